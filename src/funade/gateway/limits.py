"""Token buckets for rate limits (per deployment and per key), kept in the gateway's memory."""

from __future__ import annotations

import math
from dataclasses import dataclass

from funade.deploy.policy import RateLimit


@dataclass
class Bucket:
    limit: RateLimit
    tokens: float
    at: float

    def take(self, now: float) -> float:
        """Take one token; 0.0 if it was there, else the seconds until one will be."""
        self.tokens = min(
            self.limit.capacity, self.tokens + (now - self.at) * self.limit.per_second
        )
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.limit.per_second


class Buckets:
    """Buckets by key; one whose limit changed starts full with the new limit."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._buckets: dict[str, Bucket] = {}
        self.max_entries = max_entries

    def take(self, key: str, limit: RateLimit, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.limit != limit:
            if len(self._buckets) >= self.max_entries:
                self._buckets.clear()  # bounded memory; a reset only ever lets requests through
            bucket = self._buckets[key] = Bucket(limit, limit.capacity, now)
        return bucket.take(now)


def retry_after(wait: float) -> str:
    """The Retry-After header for a wait in seconds (whole seconds, at least 1)."""
    return str(max(1, math.ceil(wait)))
