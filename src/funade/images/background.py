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

``ImageWaits`` keeps what waits for those builds, by key (the container backend: a replica
started before its image was there, by its id): ``wait`` submits the build and remembers the
waiter; ``settle``, called at each look (the backend's ``replicas``), hands each waiter whose
build is done to the caller, once (its image's tag, or the build's error), and answers those
still waiting; ``drop`` forgets one (a replica stopped meanwhile: its build goes on, for the
next start, but nothing runs after it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["BackgroundBuilds", "ImageWaits", "Waiting"]

T = TypeVar("T")

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


@dataclass(frozen=True)
class Waiting(Generic[T]):
    """One waiter: what the caller keeps for after the build (``item``), the image's tag, and
    the build's future."""

    item: T
    tag: str
    image: Future[str]


class ImageWaits(Generic[T]):
    """Waiters for images built in the background, by key; see the module's docstring."""

    def __init__(self, builds: BackgroundBuilds | None = None) -> None:
        self._builds = builds if builds is not None else BackgroundBuilds()
        self._lock = threading.Lock()
        self._waits: dict[str, Waiting[T]] = {}

    def wait(self, key: str, item: T, tag: str, build: Callable[[], str]) -> Waiting[T]:
        """Wait for the image ``tag`` (``build`` makes it, unless its build is under way)."""
        waiting = Waiting(item, tag, self._builds.submit(tag, build))
        with self._lock:
            self._waits[key] = waiting
        return waiting

    def drop(self, key: str) -> bool:
        """Forget ``key``'s wait; whether there was one."""
        with self._lock:
            return self._waits.pop(key, None) is not None

    def settle(
        self,
        built: Callable[[str, T, str], object],
        failed: Callable[[str, T, Exception], object],
    ) -> list[tuple[str, Waiting[T]]]:
        """Call ``built(key, item, image)`` or ``failed(key, item, error)`` for each waiter whose
        build is done (then forgotten); answer those still waiting."""
        with self._lock:
            done = [(key, w) for key, w in self._waits.items() if w.image.done()]
            for key, _ in done:
                del self._waits[key]
            waiting = [(key, w) for key, w in self._waits.items()]
        for key, finished in done:
            try:
                image = finished.image.result()
            except Exception as exc:
                failed(key, finished.item, exc)
            else:
                built(key, finished.item, image)
        return waiting
