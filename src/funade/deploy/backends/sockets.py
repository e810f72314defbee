"""Where the replicas of one home listen on this machine, when they listen on Unix sockets.

One directory per home, named by a hash of the home's path so it stays short whatever the home
(AF_UNIX paths have at most 107 bytes, and ``$FUNADE_HOME`` can be long)::

    $TMPDIR/funade-<12 hex>/     funade's user; 0700 (0711 when replicas run as other users:
                                 searchable, not listable)
      <12 hex of replica id>/    the replica's own user (its process's, or the container's); 0700
        r.sock                   the replica's socket; 0600 (``funade serve --uds``)

Only funade's user (and the replica itself) can connect; the replica still asks every request
for its token. The directory is made by funade's user, and refused if someone else made it
first (``/tmp`` is everyone's).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from pathlib import Path

from funade.deploy.replicaurl import UNIX_PATH_MAX
from funade.errors import InvalidInputError

__all__ = ["SOCKET_NAME", "SocketDirs", "socket_base"]

SOCKET_NAME = "r.sock"
_NAME_HEX = 12


def socket_base(temp: Path, home: Path) -> Path:
    """The sockets' directory of the platform over ``home``, under ``temp``."""
    home = home.expanduser().absolute()
    return temp / f"funade-{hashlib.sha256(str(home).encode()).hexdigest()[:_NAME_HEX]}"


class SocketDirs:
    """The per-replica socket directories under ``base`` (see the module's docstring)."""

    def __init__(self, base: Path, *, shared: bool) -> None:
        """``shared``: replicas run as other users, who must reach their own directory (the
        base is then 0711). InvalidInputError if a socket's path would be too long."""
        self.base = base
        self.mode = 0o711 if shared else 0o700
        longest = len(os.fsencode(self.socket("x")))
        if longest > UNIX_PATH_MAX:
            raise InvalidInputError(
                f"Replicas' Unix sockets under {str(base)!r} would have paths of {longest} "
                f"bytes, more than the {UNIX_PATH_MAX} a Unix socket can have.",
                field="replica_transport",
                value="unix",
                fix="Set TMPDIR to a shorter directory (e.g. /tmp), or "
                "FUNADE_REPLICA_TRANSPORT=tcp to reach replicas over loopback TCP.",
            )

    def directory(self, replica_id: str) -> Path:
        return self.base / hashlib.sha256(replica_id.encode()).hexdigest()[:_NAME_HEX]

    def socket(self, replica_id: str) -> Path:
        return self.directory(replica_id) / SOCKET_NAME

    def make(self, replica_id: str, owner: tuple[int, int] | None = None) -> Path:
        """A fresh directory for ``replica_id``'s socket (0700, of ``owner`` (uid, gid) when
        given); the socket's path in it."""
        self._make_base()
        directory = self.directory(replica_id)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(mode=0o700)
        if owner is not None:
            os.chown(directory, *owner)
        return directory / SOCKET_NAME

    def remove(self, replica_id: str) -> None:
        shutil.rmtree(self.directory(replica_id), ignore_errors=True)

    def remove_base(self) -> None:
        """Remove the base directory if no replica's directory is left in it."""
        with contextlib.suppress(OSError):
            self.base.rmdir()

    def _make_base(self) -> None:
        with contextlib.suppress(FileExistsError):
            self.base.mkdir(mode=0o700)
        info = os.lstat(self.base)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise InvalidInputError(
                f"{str(self.base)!r} is not a directory of funade's user (uid {os.geteuid()}): "
                f"someone else made it (uid {info.st_uid}), so replicas' sockets cannot go there.",
                field="replica_transport",
                value="unix",
                fix=f"Remove {self.base} (and find out who made it), or set "
                "FUNADE_REPLICA_TRANSPORT=tcp.",
            )
        if stat.S_IMODE(info.st_mode) != self.mode:
            os.chmod(self.base, self.mode)
