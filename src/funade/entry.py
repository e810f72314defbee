"""The `funade` command's entry point: what must happen before the CLI is even imported, and how
its process ends.

For ``funade serve``, cyclic garbage collections are held from the first import on
(``funade.serving.collector``): the CLI's and the server's own imports take 40 ms less.

:func:`run` (the console script, and ``python -m funade``) ends a command's process without
tearing the interpreter down: once the command has returned, Python's exit spent 0.3-0.5 s
freeing the in-process API's modules and objects one by one (a third of `funade models list`
on a local home). It first does what an exit must: wait for the threads that are not daemons
(then it leaves it to Python), run the ``atexit`` handlers, flush stdout and stderr.
"""

from __future__ import annotations

import sys

SERVERS = ("up", "serve", "gateway")
"""Commands that run until stopped: their processes exit the ordinary way."""


def main() -> None:
    """The command line in ``sys.argv``; returns, or raises ``SystemExit`` with its status."""
    if sys.argv[1:2] == ["serve"]:
        from funade.serving.collector import hold_collections

        hold_collections()
    from funade.cli import main as cli_main

    cli_main()


def run() -> None:
    """:func:`main`, then the end of the process (see the module's docstring)."""
    if sys.argv[1:2] and sys.argv[1] in SERVERS:
        main()
        return
    code: str | int | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    _exit(code)


def _exit(code: str | int | None) -> None:
    import atexit
    import os
    import threading

    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.exit(code)  # Python joins them first
    atexit._run_exitfuncs()
    status = 1 if isinstance(code, str) else code or 0
    if isinstance(code, str):
        print(code, file=sys.stderr)  # as sys.exit("message") does
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`funade runs logs 3 | head`)
            status = status or 120
    os._exit(status)
