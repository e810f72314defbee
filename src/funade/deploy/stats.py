"""Per-revision traffic figures: counted by each gateway in windows of ``WINDOW`` seconds and
written to the store every few seconds, read back for canary analysis and the API.

A window row holds the requests, the errors (5xx answers, and requests no replica answered) and
a latency histogram over ``BOUNDS_MS``; percentiles are read from the histogram (the upper bound
of the bucket the percentile falls in), so several gateways' rows simply add up.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from funade.deploy.rollout import Figures
from funade.store import Database
from funade.store.schema import TrafficStat

WINDOW = 5
BOUNDS_MS = (
    1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000,
)  # fmt: skip
KEEP_WINDOWS = 3


@dataclass
class _Window:
    requests: int = 0
    errors: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))
    dirty: bool = True


class Recorder:
    """A gateway's counts, by (deployment id, revision, window start)."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self._windows: dict[tuple[int, int, int], _Window] = {}

    def record(
        self, deployment_id: int, revision: int, seconds: float, *, error: bool, now: float
    ) -> None:
        key = (deployment_id, revision, int(now // WINDOW) * WINDOW)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        window.requests += 1
        window.errors += error
        window.buckets[bisect.bisect_left(BOUNDS_MS, seconds * 1000)] += 1
        window.dirty = True

    def take(self, now: float) -> list[TrafficStat]:
        """The windows that changed since the last take, as rows to write (and forget closed
        windows). Call it where ``record`` is called (the gateway's event loop), so the counts
        are read whole; ``write`` the rows anywhere."""
        oldest = now - KEEP_WINDOWS * WINDOW  # closed, and written by an earlier take
        for key in [k for k, w in self._windows.items() if k[2] < oldest and not w.dirty]:
            del self._windows[key]
        rows = []
        for (deployment_id, revision, start), window in self._windows.items():
            if window.dirty:
                window.dirty = False
                rows.append(
                    TrafficStat(
                        deployment_id=deployment_id,
                        revision=revision,
                        window_start=start,
                        gateway=self.gateway,
                        requests=window.requests,
                        errors=window.errors,
                        buckets=list(window.buckets),
                    )
                )
        return rows

    def again(self, rows: list[TrafficStat]) -> None:
        """Rows that could not be written: their windows go out with the next ``take``."""
        for row in rows:
            window = self._windows.get((row.deployment_id, row.revision, row.window_start))
            if window is not None:
                window.dirty = True

    def flush(self, db: Database, now: float) -> None:
        """``take`` and ``write`` in one go (for callers on one thread)."""
        rows = self.take(now)
        try:
            write(db, rows)
        except Exception:
            self.again(rows)
            raise


def write(db: Database, rows: list[TrafficStat]) -> None:
    """Store window rows, replacing this gateway's earlier rows of the same windows."""
    if rows:
        with db.session() as session:
            for row in rows:
                session.merge(row)


def percentile(buckets: list[int], q: float) -> float | None:
    """The ``q`` quantile in ms (the upper bound of its bucket), or None without requests."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank:
            return float(BOUNDS_MS[index]) if index < len(BOUNDS_MS) else math.inf
    return math.inf


@dataclass(frozen=True)
class RevisionFigures:
    revision: int
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None

    def figures(self) -> Figures:
        return Figures(self.requests, self.errors, self.p99_ms)


def read_figures(session: Session, deployment_id: int, since: float) -> dict[int, RevisionFigures]:
    """Every revision's figures over the windows from ``since`` (the window holding it too)."""
    start = int(since // WINDOW) * WINDOW
    rows = session.scalars(
        select(TrafficStat).where(
            TrafficStat.deployment_id == deployment_id, TrafficStat.window_start >= start
        )
    )
    totals: dict[int, tuple[int, int, list[int]]] = {}
    for row in rows:
        requests, errors, buckets = totals.get(row.revision, (0, 0, [0] * (len(BOUNDS_MS) + 1)))
        merged = [a + b for a, b in zip(buckets, row.buckets, strict=False)]
        totals[row.revision] = (requests + row.requests, errors + row.errors, merged)
    return {
        revision: RevisionFigures(
            revision, requests, errors, percentile(buckets, 0.5), percentile(buckets, 0.99)
        )
        for revision, (requests, errors, buckets) in sorted(totals.items())
    }
