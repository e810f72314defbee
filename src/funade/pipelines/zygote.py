"""The step process factory: imports the pipeline's code once, then forks a process per step.

``python -m funade.pipelines.zygote`` is started by the runner and talks JSON lines over its
stdin and stdout. Forking from a process that already imported the pipeline's modules (numpy,
pandas, scikit-learn …) starts a step in a few milliseconds instead of the seconds a fresh
interpreter takes, and every step still has a process of its own: a crash, an ``os._exit`` or
the OOM killer ends that step only. This process runs no threads, so forking it is safe.

    runner → zygote   {"op": "load", "target": "train.py:training"}
                      {"op": "run", "id": "train[2]", "task": {...}}
                      {"op": "kill", "id": "train[2]"}
    zygote → runner   {"op": "ready", "digests": {node: code digest} | null}
                      | {"op": "error", "error": "..."}
                      {"op": "started", "id": ..., "pid": ...}
                      {"op": "exited", "id": ..., "pid": ..., "code": 0 | 1 | -9 ...}

When the runner goes away (its end of stdin closes, also after ``kill -9``), the zygote kills
the step processes it started and exits; a step process dies with the zygote (Linux
``PR_SET_PDEATHSIG``), so nothing keeps running unowned.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import IO, Any, BinaryIO

__all__ = ["ZygoteProcess", "main"]


class _Zygote:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.children: dict[int, str] = {}
        self.by_id: dict[str, int] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message).encode() + b"\n")
        self.out.flush()

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
        buffer = b""
        while True:
            try:
                readable, _, _ = select.select([0, self.wake_r], [], [])
            except InterruptedError:
                continue
            if self.wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wake_r, 512):
                        pass
                self.reap()
            if 0 in readable:
                data = os.read(0, 65536)
                if not data:
                    self.shutdown()
                    return
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self.handle(json.loads(line))
            self.reap()

    def handle(self, message: dict[str, Any]) -> None:
        if message["op"] == "run":
            self.fork(message["id"], message["task"])
        elif message["op"] == "kill":
            pid = self.by_id.get(message["id"])
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

    def fork(self, instance: str, task: dict[str, Any]) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            self.child(task, parent)
        self.children[pid] = instance
        self.by_id[instance] = pid
        self.send({"op": "started", "id": instance, "pid": pid})

    def child(self, task: dict[str, Any], parent: int) -> None:
        code = 70
        try:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            _die_with(parent)
            os.close(self.wake_r)
            os.close(self.wake_w)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            log = os.open(task["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            self.out.close()
            os.environ.update(task.get("env", {}))
            from funade.pipelines.task import run_task

            code = run_task(task)
        except BaseException:
            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            instance = self.children.pop(pid, None)
            if instance is None:
                continue
            self.by_id.pop(instance, None)
            code = os.waitstatus_to_exitcode(status)
            self.send({"op": "exited", "id": instance, "pid": pid, "code": code})

    def shutdown(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


class ZygoteProcess:
    """The runner's end: starts ``python -m funade.pipelines.zygote`` and speaks its protocol."""

    def __init__(self, target: str, *, env: dict[str, str] | None = None) -> None:
        """``env``: the zygote's whole environment (default: the minimal one of
        ``funade.sandbox``; never the runner's, which may hold credentials). Each step adds
        its own variables, its run's token among them."""
        from funade.sandbox.env import STEP_PASSED, minimal_env

        # What importing the code printed; closed in close().
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "funade.pipelines.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env if env is not None else minimal_env(keep=STEP_PASSED),
            start_new_session=True,  # Ctrl-C in a terminal reaches the runner, not the steps
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.buffer = b""
        self.digests: dict[str, str] | None = None
        """Each step's code digest as the zygote imported it (once ready)."""
        self.send({"op": "load", "target": target})

    def send(self, message: dict[str, Any]) -> None:
        self.stdin.write(json.dumps(message, default=str).encode() + b"\n")
        self.stdin.flush()

    def read(self, timeout: float) -> list[dict[str, Any]]:
        fd = self.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not ready:
            return []
        data = os.read(fd, 65536)
        if not data:
            raise EOFError
        self.buffer += data
        messages = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            messages.append(json.loads(line))
        return messages

    def wait_ready(self, timeout: float = 300.0) -> str | None:
        """None when the pipeline's code is imported; else the error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                for message in self.read(deadline - time.monotonic()):
                    if message["op"] == "ready":
                        self.digests = message.get("digests")
                        return None
                    if message["op"] == "error":
                        return str(message["error"])
            except EOFError:
                return f"the step process factory exited with code {self.proc.wait()}"
        return "importing the pipeline's code took longer than 5 minutes"

    def close(self) -> None:
        """End it; called when no step runs, so there is nothing to wait for."""
        with contextlib.suppress(OSError):
            self.stdin.close()  # (were any step left, the zygote would kill it on this EOF)
        self.proc.kill()
        self.proc.wait()
        with contextlib.suppress(OSError):
            self.stdout.close()
        self.log.close()

    def output(self, limit: int = 4000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-limit:]


def _die_with(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _digests(pipeline: Any) -> dict[str, str] | None:
    """The code digest of each step as imported here, where the steps run: the runner writes
    to the cache only the outputs of steps whose code is what their cache key says (a file
    saved while the run started is not)."""
    try:
        return {node.id: node.code_digest for node in pipeline.compile().nodes}
    except Exception:
        return None


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what the pipeline's code prints while imported goes to stderr
    first = json.loads(sys.stdin.buffer.readline() or b'{"op": "eof"}')
    if first.get("op") != "load":
        return
    zygote = _Zygote(out)
    try:
        # What every step needs, imported once here instead of in each step process.
        import funade.pipelines.serializers
        import funade.pipelines.task  # noqa: F401
        from funade.pipelines.loader import load_pipeline

        pipeline = load_pipeline(first["target"])
    except Exception as exc:
        zygote.send({"op": "error", "error": str(exc)})
        return
    zygote.send({"op": "ready", "digests": _digests(pipeline)})
    zygote.serve()


if __name__ == "__main__":
    main()
