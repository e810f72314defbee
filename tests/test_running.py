"""The note `funade up` leaves in its home (``funade.running``): found only when its process
holds the home's controller lock and its URL answers; a stale, malformed or foreign note is
ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from funade.client import Client
from funade.deploy.controller import ControllerLock
from funade.running import find_up, forget_up, note_path, record_up
from funade.settings import Settings


@pytest.fixture
def holding(settings: Settings) -> Iterator[ControllerLock]:
    """This process holds the home's controller lock, as `funade up` does."""
    lock = ControllerLock(settings.home / "controller.lock")
    assert lock.acquire()
    yield lock
    lock.release()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_note_of_the_lock_holder_whose_url_answers_is_found(
    settings: Settings, app_url: str, holding: ControllerLock
) -> None:
    path = record_up(settings.home, app_url, "http://127.0.0.1:9")
    assert path == settings.home / "up.json"
    assert path.stat().st_mode & 0o777 == 0o600
    found = find_up(settings.home)
    assert found is not None
    assert (found.url, found.gateway_url, found.pid) == (app_url, "http://127.0.0.1:9", os.getpid())


def test_a_stale_malformed_or_unanswered_note_is_ignored(settings: Settings) -> None:
    path = note_path(settings.home)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert find_up(settings.home) is None  # no note
    for text in ["{", "[]", '{"url": "ftp://x", "pid": 1}', '{"url": "http://x", "pid": true}']:
        path.write_text(text)
        assert find_up(settings.home) is None, text


def test_a_note_of_a_process_without_the_lock_is_ignored(settings: Settings, app_url: str) -> None:
    """A crash left the note, and a process now answers at its URL: the key never goes there."""
    record_up(settings.home, app_url, None)
    assert find_up(settings.home) is None, "this process lives, but holds no lock"
    lock = ControllerLock(settings.home / "controller.lock")
    assert lock.acquire()
    try:
        assert find_up(settings.home) is not None
    finally:
        lock.release()
    assert find_up(settings.home) is None, "the lock ends with its holder"


def test_a_note_whose_process_is_gone_or_whose_url_is_silent_is_ignored(
    settings: Settings, app_url: str, holding: ControllerLock
) -> None:
    path = note_path(settings.home)
    path.write_text(json.dumps({"url": app_url, "pid": _dead_pid()}))
    assert find_up(settings.home) is None, "its process is gone (a crash left it)"
    path.write_text(json.dumps({"url": app_url + "/nothing-here", "pid": os.getpid()}))
    assert find_up(settings.home) is None, "its URL does not answer as funade"
    path.write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid()}))
    assert find_up(settings.home, timeout=0.5) is None, "nothing listens at its URL"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_note_another_user_left_is_ignored(
    settings: Settings, app_url: str, holding: ControllerLock
) -> None:
    path = record_up(settings.home, app_url, None)
    assert find_up(settings.home) is not None
    os.chown(path, 12345, -1)
    assert find_up(settings.home) is None, "it could send this user's key elsewhere"


def test_only_the_process_that_left_the_note_removes_it(settings: Settings) -> None:
    path = record_up(settings.home, "http://127.0.0.1:1", None)
    path.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": os.getpid() + 1}))
    forget_up(settings.home)
    assert path.exists(), "another `funade up`'s note stays"
    record_up(settings.home, "http://127.0.0.1:1", None)
    forget_up(settings.home)
    assert not path.exists()


def test_a_client_without_url_talks_to_the_funade_up_it_finds(
    settings: Settings, app_url: str, holding: ControllerLock
) -> None:
    record_up(settings.home, app_url, None)
    with Client(settings=settings) as client:
        assert client.running_up is not None
        assert client.url == app_url
        assert client.whoami().name == "local-admin"  # with the key `funade up` saved
    forget_up(settings.home)
    with Client(settings=settings) as client:  # no note: the API in-process again
        assert client.running_up is None
        assert client.address.startswith("unix:")
