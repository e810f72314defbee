"""Who a project's processes run as, and the files they get.

With isolation ``users`` (funade runs as root), project N's replicas and pipeline runners run
as uid and gid ``sandbox_uid_base + N``, with no supplementary groups and umask 077, so they
cannot read the platform's files (``$FUNADE_HOME`` is private to root), another project's files,
or another process's environment (``/proc/<pid>/environ`` is readable only by its own user).
With ``none`` they run as funade's own user: one trust domain, kept apart only by their minimal
environment and scoped credentials (the container and Kubernetes backends are the boundary then).

Under the sandbox directory (mode 0711: searchable, not listable; by default
``/var/lib/funade/sandbox-<hash of home>`` as root, as ``$FUNADE_HOME`` itself is private)::

    p<N>/               0750 root:<N>   project N's, reachable only by its user
      cache/            read-only model packages, verified by digest (an ArtifactCache)
      proc/<name>/      a replica's or a launched runner's private directory, made afresh for
                        each: home/, tmp/, a replica's URL file (owned by <N>)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funade.artifacts import ArtifactCache
from funade.errors import InvalidInputError
from funade.settings import Settings

__all__ = ["RunAs", "Sandbox", "interpreter_problem", "secure_home"]

SYSTEM_SANDBOX = Path("/var/lib/funade")
"""Where the sandboxes of isolated homes go when no ``sandbox_dir`` is set."""


@dataclass(frozen=True)
class RunAs:
    """A project's own user: what ``subprocess.Popen`` needs to start a process as it."""

    uid: int
    gid: int

    def popen(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "umask": 0o077}


def _searchable_by_others(path: Path) -> Path | None:
    """The first directory from ``/`` down to ``path`` that other users cannot search."""
    for parent in [*reversed(path.parents), path]:
        try:
            mode = parent.stat().st_mode
        except FileNotFoundError:
            return None  # created later, by us, searchable
        if not mode & stat.S_IXOTH:
            return parent
    return None


def interpreter_problem() -> str | None:
    """Why a process of another user could not run this Python and funade (None: it can)."""
    import funade

    needed = [
        Path(os.path.realpath(sys.executable)),
        Path(sys.base_prefix) / "lib",
        Path(sys.prefix),
        Path(os.path.realpath(Path(funade.__file__).parent)),
    ]
    for path in needed:
        closed = _searchable_by_others(path)
        if closed is not None:
            return (
                f"{closed} (mode {stat.S_IMODE(closed.stat().st_mode):o}) keeps other users from "
                f"{path}"
            )
    return None


class Sandbox:
    """The files and users of projects' processes on this machine (see the module docstring)."""

    def __init__(self, root: Path, *, users: bool, uid_base: int) -> None:
        self.root = root
        self.users = users
        self.uid_base = uid_base
        self.reason = ""
        """Why isolation is off although funade runs as root (empty otherwise)."""
        self._readable: set[tuple[int, str]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> Sandbox:
        """The sandbox the settings ask for; InvalidInputError if ``isolation = "users"`` cannot
        work here (``auto`` falls back to ``none`` instead, and says why in ``reason``)."""
        mode = settings.isolation
        reason = ""
        if mode != "none":
            problem = "funade does not run as root" if os.geteuid() != 0 else interpreter_problem()
            if problem is not None:
                if mode == "users":
                    raise InvalidInputError(
                        f"isolation 'users' cannot work here: {problem}.",
                        field="isolation",
                        value=mode,
                        fix="Run funade as root, with a Python and virtualenv that other users "
                        "can read (e.g. `chmod o+x` on the directories above them), or set "
                        "FUNADE_ISOLATION=none.",
                    )
                reason = problem
        users = mode != "none" and not reason
        root = _root(settings, users)
        sandbox = cls(root, users=users, uid_base=settings.sandbox_uid_base)
        sandbox.reason = reason
        return sandbox

    # Users ------------------------------------------------------------------------------------

    def run_as(self, project_id: int) -> RunAs | None:
        """Project ``project_id``'s own user, or None when processes run as funade's."""
        if not self.users:
            return None
        number = self.uid_base + project_id
        return RunAs(number, number)

    # Directories ------------------------------------------------------------------------------

    def project_dir(self, project_id: int) -> Path:
        """``p<N>``, made reachable by the project's user only (and root)."""
        path = self.root / f"p{project_id}"
        if not path.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o711)
            path.mkdir(exist_ok=True)
            if self.root.parent == SYSTEM_SANDBOX:
                SYSTEM_SANDBOX.chmod(0o711)
        who = self.run_as(project_id)
        if who is not None:
            _own(path, 0, who.gid, 0o750)
        else:
            path.chmod(0o700)
        return path

    def package(
        self, project_id: int, digest: str, fetch: Callable[[str], Iterable[bytes]]
    ) -> Path:
        """The model package ``digest`` unpacked for the project's processes: fetched and
        verified once, owned by root, readable by the project's user, writable by nobody else.
        (The replica checks every file against the package's manifest before it loads.)"""
        cache = ArtifactCache(self.project_dir(project_id) / "cache", fetch)
        path = cache.unpacked(digest)
        if (project_id, digest) not in self._readable:
            # Readable (not writable) by the project's user whatever this process's umask; the
            # project directory above keeps everyone else out.
            for directory in (cache.directory, path.parent):
                directory.chmod(0o755)
            for parent, _dirs, files in os.walk(path):  # never follows links
                os.chmod(parent, 0o755)  # noqa: S103 - inside the project's 0750 directory
                for name in files:
                    file = os.path.join(parent, name)
                    if not os.path.islink(file):  # chmod would follow it out of the package
                        os.chmod(file, 0o644)
            self._readable.add((project_id, digest))
        return path

    def private_dir(self, project_id: int, name: str) -> Path:
        """A directory of the project's user alone (``proc/<name>``), with ``home`` and
        ``tmp`` in it: a replica's, or a launched runner's (its ``FUNADE_HOME`` too)."""
        procs = self.project_dir(project_id) / "proc"
        procs.mkdir(exist_ok=True)
        who = self.run_as(project_id)
        if who is not None:
            _own(procs, 0, who.gid, 0o750)
        path = procs / name
        for sub in (path, path / "home", path / "tmp"):
            sub.mkdir(mode=0o700, exist_ok=True)
            if who is not None:
                _own(sub, who.uid, who.gid, 0o700)
        return path

    def remove_private(self, project_id: int, name: str) -> None:
        shutil.rmtree(self.root / f"p{project_id}" / "proc" / name, ignore_errors=True)


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    info = path.stat()
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
    if stat.S_IMODE(info.st_mode) != mode:
        path.chmod(mode)


def _root(settings: Settings, users: bool) -> Path:
    """The sandbox directory: ``sandbox_dir``; else, with isolation ``users``, one of this
    home's own under /var/lib/funade (other users must reach it; the home stays closed to
    them), and ``$FUNADE_HOME/sandbox`` without."""
    if settings.sandbox_dir is not None:
        root = settings.sandbox_dir
        if users:
            closed = _searchable_by_others(root.parent)
            if closed is not None:
                raise InvalidInputError(
                    f"sandbox_dir {str(root)!r} is below {closed}, which other users cannot "
                    "search, so projects' processes could not reach their files.",
                    field="sandbox_dir",
                    value=str(root),
                    fix=f"Choose a directory they can reach (e.g. {SYSTEM_SANDBOX}/sandbox), or "
                    f"`chmod o+x {closed}`.",
                )
        return root
    home = settings.home.expanduser().absolute()
    if not users:
        return home / "sandbox"
    tag = hashlib.sha256(str(home).encode()).hexdigest()[:16]
    return SYSTEM_SANDBOX / f"sandbox-{tag}"


def secure_home(home: Path) -> None:
    """Make ``$FUNADE_HOME`` private to funade's user (mode 0700): its database, artifacts,
    credentials and logs are nobody else's business, model code's least of all."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
