"""Readiness across the worker processes of one server: ready only when every worker is.

Each worker loads the model itself, so while one has loaded and another has not, a request
could land on the one still loading. Each worker that is ready leaves a file named after its
process id in a directory the parent made; the server is ready when ``workers`` of those files
belong to live processes (a worker that died and is being replaced by a new one does not count).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path


def watch_parent(parent: int, interval: float = 1.0) -> threading.Thread:
    """Stop this worker (SIGTERM: gracefully) if the server process ``parent`` goes away.

    uvicorn's supervisor stops its workers when it is asked to stop, but a parent that is
    killed (SIGKILL, the OOM killer) cannot; its workers would go on holding the port."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


class WorkerPeers:
    """The ready-files of ``workers`` worker processes in ``directory``."""

    def __init__(self, directory: Path, workers: int) -> None:
        self.directory = directory
        self.workers = workers
        self._mine = directory / f"ready-{os.getpid()}"

    def mark_ready(self) -> None:
        self._mine.touch()

    def mark_gone(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._mine.unlink()

    def all_ready(self) -> bool:
        live = 0
        for path in self.directory.glob("ready-*"):
            pid = int(path.name.removeprefix("ready-"))
            if _alive(pid):
                live += 1
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return live >= self.workers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
