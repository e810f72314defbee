"""The gateway's process forked from `funade up` once the imports both need are done.

`funade up` and the gateway import the same store (SQLAlchemy's ORM, the schema), settings
(pydantic) and key checks: about two thirds of the gateway's imports. Started as
``python -m funade.gateway``, the gateway imports them again, and on one core (a small VM, a
container given one CPU) those imports queue behind the API's on the way to a first prediction
(``benchmarks/platform``). :func:`fork_gateway` forks `funade up` after them, before it opens
the store or starts a thread. The child, in a session of its own with its output in the home's
``gateway.log``, imports what only the gateway serves with (its app, the lean front, uvloop,
prometheus_client) while the parent migrates the store and builds the API, then waits.
:meth:`ForkedGateway.start` tells it to serve (on the host and port it is given) once the
platform's lock is held; :meth:`ForkedGateway.cancel`, or the parent's end by any means (the
pipe closes), makes it exit unstarted.

A fork is only safe while one thread runs (a lock another thread held stays held in the child
forever): :func:`fork_gateway` returns None when any other thread runs (an embedding program, a
test process) or off Linux, and `funade up` starts ``python -m funade.gateway`` instead. The
forked process shows `funade up`'s command line, as a forked worker does; its name
(``/proc/<pid>/comm``: ``top``, ``ps -o comm``, ``pgrep funade-gateway``) is ``funade-gateway``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from funade.settings import Settings

__all__ = ["NAME", "ForkedGateway", "fork_gateway"]

NAME = "funade-gateway"
"""The forked process's name (at most 15 bytes: Linux's limit)."""


class ForkedGateway:
    """The parent's handle on a forked gateway: start it, cancel it, poll and kill it as a
    ``subprocess.Popen`` child."""

    def __init__(self, pid: int, go: int) -> None:
        self.pid = pid
        self._go: int | None = go
        self._status: int | None = None

    @property
    def pending(self) -> bool:
        """Neither started nor cancelled yet."""
        return self._go is not None

    def start(self, host: str, port: int) -> None:
        """Tell the child to serve on ``host``:``port``."""
        go = self._take()
        try:
            os.write(go, f"{host} {port}\n".encode())
        finally:
            os.close(go)

    def cancel(self) -> None:
        """Tell the child to exit unstarted (it may still be importing: it is not waited for)."""
        with contextlib.suppress(ValueError):
            os.close(self._take())

    def poll(self) -> int | None:
        """The child's exit status once it has exited (reaped then), else None."""
        if self._status is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == self.pid:
                    self._status = os.waitstatus_to_exitcode(status)
        return self._status

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def _take(self) -> int:
        if self._go is None:
            raise ValueError("the forked gateway was already started or cancelled")
        go, self._go = self._go, None
        return go


def fork_gateway(settings: Settings) -> ForkedGateway | None:
    """Fork the gateway's process now (see the module's docstring); None if this process may not
    be forked. ``settings.home`` must exist: the child's output goes to its ``gateway.log``."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return None
    _load_dialect(settings)
    log_path = settings.home / "gateway.log"
    read, write = os.pipe()
    for stream in (sys.stdout, sys.stderr):  # what the parent buffered is printed once
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    pid = os.fork()
    if pid != 0:
        os.close(read)
        return ForkedGateway(pid, write)
    code = 1
    try:  # the child: never returns into the parent's stack
        os.close(write)
        os.setsid()
        code = _child(settings, str(log_path), read)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _child(settings: Settings, log_path: str, go: int) -> int:
    _set_name(NAME)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.environ.update(FUNADE_HOME=str(settings.home), COLUMNS="1000")
    failed = ""
    try:  # while the parent builds the API
        import uvloop  # noqa: F401

        import funade.gateway.app
        import funade.web.front  # noqa: F401
    except Exception:
        failed = traceback.format_exc()
    with os.fdopen(go, "rb") as pipe:
        said = pipe.readline().decode().split()
    if len(said) != 2:  # cancelled, or the parent is gone: it never served
        return 0
    if failed:
        sys.stderr.write(failed)
        return 1
    from funade.gateway.__main__ import serve

    host, port = said
    serve(settings, host, int(port), settings.home / "gateway.url")
    return 0


def _load_dialect(settings: Settings) -> None:
    """Import the store's SQLAlchemy dialect (both processes open the store after the fork)."""
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):  # a wrong URL is said when the store is opened
        make_url(settings.resolved_database_url).get_dialect()


def _set_name(name: str) -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
