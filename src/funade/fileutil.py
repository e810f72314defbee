"""Small file helpers shared by processes that read each other's files."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def write_atomically(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temp, path)


def lock_holder(path: Path) -> int | None:
    """The pid written in the lock file at ``path`` while a process holds its ``flock``
    (``deploy.controller.ControllerLock``), without taking it; None when it is free or
    missing, 0 when it is held but names no pid. A lock ends with its process, ``kill -9``
    too, so a pid found here is alive and holding it."""
    try:
        handle = open(path)  # noqa: SIM115 - closed below
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
