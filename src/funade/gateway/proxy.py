"""The proxy's bookkeeping between a request's checks and its answer: the rate limits
(``take_tokens``), and the replicas' side (``Replicas``): each request forwarded to the replica
with the fewest requests in flight, on a connection failure to the next one (the failed one
ejected for ``EJECT_SECONDS``), and a copy sent to the shadow revision. ``Gateway._proxy``
(``app.py``) calls them directly."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Counter

from funade.auth.principal import Principal
from funade.deploy.stats import Recorder
from funade.gateway.forms import Answer
from funade.gateway.http import PASSED_BACK, Refused
from funade.gateway.limits import Buckets, retry_after
from funade.gateway.table import Route
from funade.gateway.upstream import Upstream, UpstreamError

ATTEMPTS = 3
EJECT_SECONDS = 2.0
SHADOW_MAX_INFLIGHT = 64


def take_tokens(buckets: Buckets, route: Route, principal: Principal | None) -> None:
    """A token from the deployment's bucket and from the key's, each where the policy sets a
    rate limit; without one, a 429 saying when to retry."""
    now = time.monotonic()
    policy = route.policy
    if policy.rate_limit is not None:
        wait = buckets.take(f"d:{route.name}", policy.rate_limit, now)
        if wait:
            raise _over_limit(
                wait,
                f"Deployment {route.name!r} is over its rate limit "
                f"of {policy.rate_limit.per_second:g} requests/s.",
            )
    if policy.key_rate_limit is not None and principal is not None:
        wait = buckets.take(f"k:{route.name}:{principal.key_id}", policy.key_rate_limit, now)
        if wait:
            raise _over_limit(
                wait,
                f"Key {principal.name!r} is over its rate limit of "
                f"{policy.key_rate_limit.per_second:g} requests/s on {route.name!r}.",
            )


def _over_limit(wait: float, message: str) -> Refused:
    """The 429 of a rate limit, with when to retry."""
    return Refused(
        429,
        "rate_limited",
        message,
        "Retry after the time in Retry-After.",
        {"Retry-After": retry_after(wait)},
    )


class Replicas:
    """Requests in flight to each replica, the replicas ejected after a connection failure and
    the shadow copies out; ``upstream`` (the gateway's) holds the connections, ``stats``,
    ``requests`` and ``retries`` are the gateway's figures and counters."""

    def __init__(
        self, upstream: Upstream, stats: Recorder, requests: Counter, retries: Counter
    ) -> None:
        self.upstream = upstream
        self.stats = stats
        self.requests = requests
        self.retries = retries
        self.inflight: dict[str, int] = {}
        self.ejected: dict[str, float] = {}
        self.shadows = 0

    def busy(self, route: Route, order: list[int]) -> bool:
        """Whether a call to the drawn revision's replicas is out. Only then can a request
        have anything to merge with: one that finds none out goes at once, unparsed (parsing
        it and passing it through a merge group cost ~30 us of the gateway's CPU)."""
        inflight = self.inflight
        return bool(order) and any(inflight.get(u) for u in route.replicas.get(order[0], ()))

    def candidates(self, route: Route, order: list[int]) -> list[tuple[int, str]]:
        """(revision, replica URL) pairs to try in order: the picked revision's replicas by
        fewest in flight, then the other revisions'."""
        now = time.monotonic()
        out: list[tuple[int, str]] = []
        for revision in order:
            urls = [u for u in route.replicas.get(revision, ()) if self.ejected.get(u, 0) <= now]
            urls.sort(key=lambda u: self.inflight.get(u, 0))
            out += [(revision, u) for u in urls]
        return out

    async def forward(
        self,
        route: Route,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        order: list[int],
    ) -> Answer:
        """Send ``body`` to a replica of the first revision in ``order`` that has one; on a
        connection failure, to the next replica (at most ``ATTEMPTS`` in all)."""
        candidates = self.candidates(route, order)
        if not candidates:
            raise Refused(
                503,
                "unavailable",
                f"Deployment {route.name!r} has no ready replica now.",
                "Retry in a moment; `funade deployments show` says what its replicas do.",
                {"Retry-After": "1"},
            )
        timeout = route.policy.timeout_seconds
        last: Exception | None = None
        for attempt, (revision, url) in enumerate(candidates[:ATTEMPTS]):
            if attempt:
                self.retries.labels(route.name).inc()
            self.inflight[url] = self.inflight.get(url, 0) + 1
            try:
                status, answered, payload = await self.upstream.request(
                    url, method, target, headers + route.credential(url), body, timeout
                )
                out = [(k, v) for k, v in answered if k in PASSED_BACK]
                return status, out, payload, revision
            except UpstreamError as exc:
                # Refused, reset, closed before or while answering (a replica killed mid-body
                # is a ClientPayloadError), or an answer that is not HTTP: try another replica.
                # Inference is idempotent, so a request the dead replica may have read is safe
                # to send again.
                last = exc
                self.ejected[url] = time.monotonic() + EJECT_SECONDS
            except TimeoutError:
                timed_out = Refused(
                    504,
                    "timeout",
                    f"Deployment {route.name!r} did not answer within "
                    f"{route.policy.timeout_seconds:g} s.",
                    "Retry, or raise the deployment's timeout.",
                )
                timed_out.revision = revision
                raise timed_out from None
            finally:
                self.inflight[url] -= 1
        unreachable = Refused(
            502,
            "bad_gateway",
            f"No replica of {route.name!r} could be reached ({last!r}).",
            "Retry in a moment.",
            {"Retry-After": "1"},
        )
        unreachable.revision = candidates[0][0]
        raise unreachable

    def mirror(
        self, route: Route, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """Send a copy to the shadow revision; never waited for, dropped when too many are out."""
        urls = route.replicas.get(route.shadow or 0, ())
        if not urls or self.shadows >= SHADOW_MAX_INFLIGHT:
            return
        url = min(urls, key=lambda u: self.inflight.get(u, 0))
        self.shadows += 1

        shadow = route.shadow or 0

        async def send_copy() -> None:
            started = time.perf_counter()
            error = True
            try:
                status, _, _ = await self.upstream.request(
                    url, method, target, headers + route.credential(url), body, 30
                )
                error = status >= 500
                self.requests.labels(route.name, f"shadow-{route.shadow}", str(status)).inc()
            except Exception:
                self.requests.labels(route.name, f"shadow-{route.shadow}", "error").inc()
            finally:
                self.shadows -= 1
                elapsed = time.perf_counter() - started
                self.stats.record(route.id, shadow, elapsed, error=error, now=time.time())

        asyncio.get_running_loop().create_task(send_copy())
