"""The note a running `funade up` leaves in its home, so that the CLI and SDK find it.

`funade up` writes ``$FUNADE_HOME/up.json`` (its API's URL, its gateway's URL and its pid) once
it serves, and removes it when it stops. A client with no ``FUNADE_URL`` reads it: when that pid
holds the home's controller lock (``controller.lock``, which only a live `funade up` over this
home holds: the lock ends with its process, ``kill -9`` too) and the URL answers, it talks to
that `funade up` (whose controller starts what it is asked to) instead of running an API of its
own in-process. So a note a crash left is ignored, and the home's admin key never goes to
whatever listens on a port a stopped `funade up` left behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from funade.fileutil import lock_holder, write_atomically

FILE_NAME = "up.json"
LOCK_NAME = "controller.lock"
"""The lock `funade up` holds over its home (``deploy.controller.ControllerLock``)."""


@dataclass(frozen=True)
class RunningUp:
    """A `funade up` serving over a home."""

    url: str
    gateway_url: str | None
    pid: int
    path: Path
    """The note it was read from."""


def note_path(home: Path) -> Path:
    return home / FILE_NAME


def record_up(home: Path, url: str, gateway_url: str | None) -> Path:
    """Leave the note of this process, serving at ``url``."""
    path = note_path(home)
    body = {"url": url, "gateway_url": gateway_url, "pid": os.getpid()}
    write_atomically(path, json.dumps(body) + "\n", mode=0o600)
    return path


def forget_up(home: Path) -> None:
    """Remove the note if this process left it (never one of another `funade up`)."""
    path = note_path(home)
    found = _read(path)
    if found is not None and found.pid == os.getpid():
        path.unlink(missing_ok=True)


def find_up(home: Path, *, timeout: float = 2.0) -> RunningUp | None:
    """The `funade up` serving over ``home``, or None: no note, a note of a process that does
    not hold the home's controller lock (gone, or not `funade up`), or one whose URL does not
    answer its health check within ``timeout`` seconds."""
    found = _read(note_path(home))
    if found is None or lock_holder(home / LOCK_NAME) != found.pid:
        return None
    import httpx

    try:
        answer = httpx.get(f"{found.url}/healthz", timeout=timeout)
    except httpx.HTTPError:
        return None
    return found if answer.status_code == 200 else None


def _read(path: Path) -> RunningUp | None:
    """The note at ``path``; None if it is missing, unreadable, malformed, or not this user's
    (a note another user left could send this user's key elsewhere)."""
    try:
        if path.stat().st_uid != os.getuid():
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    url, gateway, pid = data.get("url"), data.get("gateway_url"), data.get("pid")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    return RunningUp(
        url=url.rstrip("/"),
        gateway_url=gateway.rstrip("/") if isinstance(gateway, str) else None,
        pid=pid,
        path=path,
    )
