"""A container engine's command line, podman's or docker's: one small runner that the container
backend (``funade.deploy.backends.container``) and the on-demand image build
(``funade.images.ondemand``) drive.

Only flags both take are used (podman's CLI copies docker's), so the same calls work through
docker, or through Debian's ``podman-docker`` shim that runs podman as ``docker``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from funade.errors import FunadeError, InvalidInputError

__all__ = ["ENGINES", "ContainerEngine", "EngineError"]

ENGINES = ("podman", "docker")

_INSTALL = {
    "podman": "Install it: on Debian or Ubuntu `sudo apt-get install podman` (then, on a "
    "machine with no image registry in reach, `sudo scripts/podman-setup`); on Fedora or RHEL "
    "`sudo dnf install podman`; or set `backend` to another value.",
    "docker": "Install it: on Debian or Ubuntu `sudo apt-get install docker.io` (or "
    "`podman-docker`, podman behind a `docker` command); elsewhere see "
    "https://docs.docker.com/engine/install/; or set `backend` to another value.",
}


class EngineError(FunadeError):
    """A command of the container engine failed; the message holds what it printed."""

    code = "container_engine"


class ContainerEngine:
    """Runs ``<executable> ARGS...`` (podman or docker) and returns what it printed."""

    def __init__(self, name: str, executable: str) -> None:
        self.name = name
        self.executable = executable

    @classmethod
    def find(cls, name: str, *, executable: str | None = None) -> ContainerEngine:
        """The engine ``name`` (podman or docker): ``executable`` if given, else the one on
        ``PATH``; a clear error naming how to install it when there is none."""
        if name not in ENGINES:
            raise InvalidInputError(
                f"{name!r} is not a container engine funade drives.",
                field="backend",
                value=name,
                fix=f"Use one of: {', '.join(ENGINES)}.",
            )
        found = executable if executable is not None else shutil.which(name)
        if found is None or not os.access(found, os.X_OK):
            raise InvalidInputError(
                f"The {name} backend runs replicas with `{name}`, and there is no "
                f"{executable or name!r} {'on PATH' if executable is None else 'to run'}.",
                field="backend",
                value=name,
                fix=_INSTALL[name],
            )
        return cls(name, found)

    def run(
        self,
        *args: str,
        timeout: float = 60.0,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the engine with ``args``. ``env``: variables added to the engine's own
        environment (read by ``-e NAME`` without a value, so that no secret is on a command
        line); ``log``: a file to append the output to instead of capturing it (a build's);
        ``check``: raise ``EngineError`` when it fails."""
        command = [self.executable, *args]
        environment = {**os.environ, **env} if env else None
        logged = log.stat().st_size if log is not None and log.exists() else 0
        try:
            if log is None:
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
            else:
                with open(log, "a", encoding="utf-8") as out:
                    out.write("$ " + " ".join(command) + "\n")
                    out.flush()
                    done = subprocess.run(
                        command,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        text=True,
                        timeout=timeout,
                        env=environment,
                        stdin=subprocess.DEVNULL,
                        check=False,
                    )
        except subprocess.TimeoutExpired:
            raise EngineError(
                f"`{self.name} {_shown(args)}` did not finish in {timeout:g} s.",
                field="backend",
                value=self.name,
                fix=f"See whether `{self.name} info` answers; a stuck engine needs a restart.",
            ) from None
        if check and done.returncode != 0:
            said = (done.stderr or done.stdout or "").strip()[-2000:]
            if log is not None:
                said = f"{_last_lines(log, logged)} (all of its output: {log})"
            raise EngineError(
                f"`{self.name} {_shown(args)}` failed (exit status {done.returncode}): {said}",
                field="backend",
                value=self.name,
                fix=f"Fix what {self.name} reports above.",
            )
        return done

    def __repr__(self) -> str:
        return f"ContainerEngine({self.name!r}, {self.executable!r})"


def _last_lines(log: Path, start: int, count: int = 4, limit: int = 1500) -> str:
    """The last ``count`` lines a command wrote to ``log`` from offset ``start`` on, joined
    with `` | `` (a builder's error is in its last lines: pip's, a missing base image's)."""
    try:
        with open(log, "rb") as handle:
            handle.seek(start)
            written = handle.read().decode("utf-8", "replace")
    except OSError:
        return "(its output could not be read)"
    lines = [line.strip() for line in written.splitlines() if line.strip()]
    said = " | ".join(lines[1:][-count:])  # the first is the command, written above
    return said[-limit:] if said else "(it printed nothing)"


def _shown(args: Sequence[str], limit: int = 6) -> str:
    """The first few arguments of a command, for a message."""
    return " ".join(args[:limit]) + (" ..." if len(args) > limit else "")
