"""Image builds off the caller's thread: the container backend's controller asks for an image
and goes on reconciling while it builds.

``BackgroundBuilds.submit(key, build)`` runs ``build`` (``funade.images.ondemand.ensure_image``,
a call that returns the image's tag) in a thread of its own and answers its ``Future``; at most
``workers`` builds run at once, the others wait their turn. While a build of ``key`` (the
image's tag, so one per digest) is queued or running, every other ``submit`` of that key answers
the same future: two replicas of a new version wait for one build. Once it is done the key is
forgotten, so a build that failed runs again at the next ``submit`` (the caller's crash backoff
decides when), and one that succeeded is found by the caller's own cache check (the image is
tagged).

The threads are daemons: a control plane that stops does not wait for a build (the builder, a
child process, finishes on its own and tags its image, which the next start then finds).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

__all__ = ["BackgroundBuilds"]

WORKERS = 2
"""Builds at a time: two versions' first starts do not wait for each other, and a build (pip,
a builder committing layers) has the machine's cores mostly to itself."""


class BackgroundBuilds:
    """At most one build per key at a time; see the module's docstring."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._queued: dict[str, Future[str]] = {}

    def submit(self, key: str, build: Callable[[], str]) -> Future[str]:
        """The future of the build of ``key``: the one queued or running, else ``build``
        started now."""
        with self._lock:
            future = self._queued.get(key)
            if future is not None:
                return future
            future = Future[str]()
            self._queued[key] = future
        thread = threading.Thread(
            target=self._build, args=(key, build, future), name=f"build {key}", daemon=True
        )
        thread.start()
        return future

    def building(self) -> list[str]:
        """The keys queued or being built now."""
        with self._lock:
            return sorted(self._queued)

    def _build(self, key: str, build: Callable[[], str], future: Future[str]) -> None:
        with self._slots:
            future.set_running_or_notify_cancel()
            try:
                tag = build()
            except BaseException as exc:  # the caller reads it from the future
                self._forget(key)
                future.set_exception(exc)
            else:
                self._forget(key)
                future.set_result(tag)

    def _forget(self, key: str) -> None:
        """Before the future is done: whoever sees it done and submits again gets a new one."""
        with self._lock:
            self._queued.pop(key, None)
