"""What a step process leaves, made into its outcome: a success with its outputs kept, or a
failure that says why (its error, a timeout, a signal, an exit before it finished).

Outputs are kept by digest: small JSON values inline in the step's record, anything else
uploaded to the artifact store and adopted into the local artifact cache, so the next step
reads it from disk. A finished attempt's log is stored the same way.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
from pathlib import Path
from typing import Any

from funade.artifacts import ArtifactCache
from funade.artifacts.digest import sha256_file
from funade.durations import format_seconds
from funade.errors import FunadeError
from funade.pipelines.engine import Event, Failed, Stopped, Stored, Succeeded
from funade.pipelines.reporting import RunReporter
from funade.pipelines.task import RESULT

__all__ = ["StepOutputs", "remove_attempt"]


class StepOutputs:
    """Keeps the outputs and logs of one run's steps in its project."""

    def __init__(self, reporter: RunReporter, cache: ArtifactCache, *, project: str) -> None:
        self.reporter = reporter
        self.cache = cache
        self.project = project

    def outcome(
        self,
        instance: str,
        out_dir: Path,
        code: int,
        *,
        stopping: bool = False,
        timed_out: bool = False,
        timeout: float = 0,
    ) -> Event:
        """What became of the attempt whose process exited with ``code`` (negative: killed by
        that signal), having written its result in ``out_dir``, or not."""
        if stopping:
            return Stopped(instance)
        if timed_out:
            return Failed(instance, f"timed out after {format_seconds(timeout)} and was killed")
        result_path = out_dir / RESULT
        if not result_path.exists():
            if code < 0:
                name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
                hint = " (out of memory?)" if code == -signal.SIGKILL else ""
                return Failed(instance, f"the step's process was killed by {name}{hint}")
            return Failed(
                instance, f"the step's process exited with code {code} before it finished"
            )
        result = json.loads(result_path.read_text())
        if not result["ok"]:
            return Failed(instance, result["error"], retryable=bool(result.get("retryable")))
        try:
            outputs = {name: self.keep(o) for name, o in result["outputs"].items()}
        except FunadeError as exc:
            return Failed(instance, f"storing its outputs failed: {exc}")
        return Succeeded(instance, outputs)

    def keep(self, output: dict[str, Any]) -> Stored:
        """Store one output: inline in the record when small JSON, else as an artifact."""
        path = Path(output.pop("path"))
        stored = Stored.model_validate(output)
        if stored.inline:
            path.unlink(missing_ok=True)
            return stored
        self.reporter.upload_artifact(path, digest=stored.digest, project=self.project)
        self.cache.adopt(stored.digest, path)
        return stored.model_copy(update={"value": None})

    def upload_log(self, path: Path) -> str | None:
        """Store a finished attempt's log: its digest, or None if it is empty or the upload
        failed (the record then has no log)."""
        if not path.exists() or path.stat().st_size == 0:
            return None
        digest = sha256_file(path)
        try:
            self.reporter.upload_artifact(path, digest=digest, project=self.project)
        except FunadeError:
            return None
        return digest


def remove_attempt(out_dir: Path) -> None:
    """What a finished attempt leaves once its outputs are kept: its result and an empty work
    directory, removed with three calls (``rmtree`` took a chain's steps 1-2 ms each); anything
    else there (outputs of a failed attempt, files its inputs were unpacked to), with rmtree."""
    try:
        (out_dir / RESULT).unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (out_dir / "work").rmdir()
        out_dir.rmdir()
    except OSError:
        with contextlib.suppress(OSError):
            shutil.rmtree(out_dir)
