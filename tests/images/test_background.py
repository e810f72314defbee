"""Image builds in the background (funade.images.background): one build per key at a time,
shared by whoever asks for that key meanwhile; a failed one forgotten, so that the next ask
builds again; no more than ``workers`` at once; and the waiters for them (``ImageWaits``), each
handed over once when its build is done, or forgotten when dropped. The builds here are plain
functions that wait on events (the real builds, through podman, are in tests/deploy/backends/)."""

from __future__ import annotations

import threading

import pytest

from funade.errors import FunadeError
from funade.images.background import BackgroundBuilds, ImageWaits

WAIT = 30.0
"""A deadline for what should happen at once: only a hung test ever reaches it."""


def held(tag: str, go: threading.Event, calls: list[str]) -> str:
    calls.append(tag)
    assert go.wait(WAIT)
    return tag


def test_two_asks_for_one_key_share_one_build() -> None:
    builds = BackgroundBuilds()
    go = threading.Event()
    calls: list[str] = []
    first = builds.submit("funade/a:1-abc", lambda: held("funade/a:1-abc", go, calls))
    second = builds.submit("funade/a:1-abc", lambda: held("never", go, calls))
    assert second is first
    assert not first.done()
    assert builds.building() == ["funade/a:1-abc"]
    go.set()
    assert first.result(WAIT) == "funade/a:1-abc"
    assert calls == ["funade/a:1-abc"]
    assert builds.building() == [], "forgotten once done"
    third = builds.submit("funade/a:1-abc", lambda: "funade/a:1-abc")
    assert third is not first, "a later ask (the caller found no image) builds again"
    assert third.result(WAIT) == "funade/a:1-abc"


def test_a_failed_build_is_the_futures_error_and_the_next_ask_builds_again() -> None:
    builds = BackgroundBuilds()

    def fails() -> str:
        raise FunadeError("`podman build` failed (exit status 125): Error: no base")

    failed = builds.submit("funade/b:1-abc", fails)
    with pytest.raises(FunadeError) as info:
        failed.result(WAIT)
    assert info.value.message == "`podman build` failed (exit status 125): Error: no base"
    again = builds.submit("funade/b:1-abc", lambda: "funade/b:1-abc")
    assert again is not failed
    assert again.result(WAIT) == "funade/b:1-abc"


def test_no_more_than_workers_builds_run_at_once_and_the_others_wait_their_turn() -> None:
    builds = BackgroundBuilds(workers=1)
    go = threading.Event()
    running = threading.Event()
    calls: list[str] = []

    def build(tag: str) -> str:
        calls.append(tag)
        running.set()
        assert go.wait(WAIT)
        return tag

    first = builds.submit("one", lambda: build("one"))
    second = builds.submit("two", lambda: build("two"))
    assert builds.building() == ["one", "two"]
    assert running.wait(WAIT)
    assert len(calls) == 1, "the other build waits for the one slot"
    assert not first.done()
    assert not second.done()
    go.set()
    assert (first.result(WAIT), second.result(WAIT)) == ("one", "two")
    assert sorted(calls) == ["one", "two"]


def test_each_waiter_is_handed_over_once_when_its_build_is_done_and_a_dropped_one_never() -> None:
    waits = ImageWaits[str]()
    go = threading.Event()
    calls: list[str] = []
    built: list[tuple[str, str, str]] = []
    failed: list[tuple[str, str, str]] = []

    def on_built(key: str, item: str, image: str) -> None:
        built.append((key, item, image))

    def on_failed(key: str, item: str, error: Exception) -> None:
        failed.append((key, item, str(error)))

    def fails() -> str:
        raise FunadeError("`podman build` failed (exit status 125): Error: no base")

    first = waits.wait("r1", "spec 1", "funade/a:1-abc", lambda: held("funade/a:1-abc", go, calls))
    second = waits.wait("r2", "spec 2", "funade/a:1-abc", lambda: held("never", go, calls))
    assert second.image is first.image, "one build of the tag for both"
    dropped = waits.wait("r3", "spec 3", "funade/a:1-abc", lambda: held("never", go, calls))
    broken = waits.wait("r4", "spec 4", "funade/b:1-abc", fails)
    with pytest.raises(FunadeError):
        broken.image.result(WAIT)
    assert waits.drop("r3")
    assert not waits.drop("r3"), "dropped once"
    assert dropped.item == "spec 3"
    still = waits.settle(on_built, on_failed)
    assert [(key, w.item, w.tag) for key, w in still] == [
        ("r1", "spec 1", "funade/a:1-abc"),
        ("r2", "spec 2", "funade/a:1-abc"),
    ]
    assert failed == [("r4", "spec 4", "`podman build` failed (exit status 125): Error: no base")]
    assert built == []
    go.set()
    assert first.image.result(WAIT) == "funade/a:1-abc"
    assert waits.settle(on_built, on_failed) == []
    assert built == [("r1", "spec 1", "funade/a:1-abc"), ("r2", "spec 2", "funade/a:1-abc")]
    assert len(failed) == 1, "handed over once"
    assert waits.settle(on_built, on_failed) == []
    assert len(built) == 2, "handed over once"
    assert calls == ["funade/a:1-abc"]
