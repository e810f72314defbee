"""The Kubernetes backend's pods, kept from a watch instead of a list on every pass.

``PodWatch`` lists the pods with funade's owner labels once, then follows the API server's
``?watch=1`` stream from the list's resourceVersion in a thread of its own, applying ADDED,
MODIFIED and DELETED events to its copy. A stream ends after ``timeout_seconds`` (the server ends
it) and is opened again from the last resourceVersion seen; a 410 Gone (the server no longer
keeps the history from there, e.g. after etcd compacted it) or any other error lists again,
after a pause that doubles on each failure in a row (at most ``BACKOFF_MAX``); every
``resync_seconds`` it lists again anyway, so a missed event cannot mislead it for long.

``pods()`` is the copy, or None until the first list has been read or while the watch is
failing: the caller then lists itself, so readiness is never read from a copy known to be stale.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from funade.deploy.k8s.client import KubeClient
from funade.errors import APIError

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "PodWatch"]

log = logging.getLogger("funade.kubernetes")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


class PodWatch:
    """See the module's docstring. ``start`` once; ``stop`` to let go (the thread ends when its
    stream does, within ``timeout_seconds``)."""

    def __init__(
        self,
        kube: KubeClient,
        labels: Mapping[str, str],
        *,
        timeout_seconds: int = 60,
        resync_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.labels = dict(labels)
        self.timeout_seconds = timeout_seconds
        self.resync_seconds = resync_seconds
        self.clock = clock
        self.lists = 0
        """How many times it has listed (the first, resyncs, and after a 410 or an error)."""
        self.gone = 0
        """How many streams ended with 410 Gone."""
        self._pods: dict[str, dict[str, Any]] = {}
        self._synced = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="funade-pod-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def pods(self) -> list[dict[str, Any]] | None:
        """The pods as last seen, or None while there is no copy to trust."""
        with self._lock:
            if not self._synced:
                return None
            return [copy.deepcopy(pod) for pod in self._pods.values()]

    # The thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._list()
                listed_at = self.clock()
                while not self._stop.is_set() and self.clock() - listed_at < self.resync_seconds:
                    version = self._follow(version)
                failures = 0
            except APIError as exc:
                with self._lock:
                    self._synced = exc.status_code == 410  # the copy is still the latest known
                if exc.status_code == 410:
                    self.gone += 1
                    continue  # list again at once: nothing is wrong but the history
                failures += 1
                log.warning("Watching pods failed (%s); listing again.", exc.message)
            except Exception as exc:  # a thread must not die of it: list again, later
                with self._lock:
                    self._synced = False
                failures += 1
                log.warning(
                    "Watching pods failed (%s: %s); listing again.", type(exc).__name__, exc
                )
            if failures:
                self._stop.wait(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1)))

    def _list(self) -> str:
        listing = self.kube.list("Pod", self.labels)
        with self._lock:
            self._pods = {str(p["metadata"]["name"]): p for p in listing.items}
            self._synced = True
        self.lists += 1
        return listing.resource_version

    def _follow(self, version: str) -> str:
        """One stream from ``version``; the last resourceVersion it gave."""
        for event in self.kube.watch(
            "Pod", self.labels, resource_version=version, timeout_seconds=self.timeout_seconds
        ):
            metadata = event.object.get("metadata") or {}
            name = str(metadata.get("name"))
            with self._lock:
                if event.type == "DELETED":
                    self._pods.pop(name, None)
                elif event.type in ("ADDED", "MODIFIED"):
                    self._pods[name] = event.object
            version = str(metadata.get("resourceVersion") or version)
            if self._stop.is_set():
                break
        return version
