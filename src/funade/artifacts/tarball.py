"""Model packages as uncompressed POSIX (pax) tars: packed deterministically, read safely.

:func:`pack_directory` makes the same bytes, hence the same digest, from the same directory
contents whatever the file times, owners or permissions. :func:`unpack` and
:func:`iter_members` refuse members that could escape the destination (absolute paths, ``..``,
links pointing outside) and device files, and treat a damaged or truncated archive as an error
rather than as a shorter one.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Self

from funade.artifacts.digest import sha256_file
from funade.artifacts.store import BlobInfo
from funade.errors import InvalidArtifactError, InvalidInputError

__all__ = ["iter_members", "pack_directory", "unpack"]

_FIX = (
    "Rebuild the package with `funade` (or `tar -cf` from inside the model directory) so it "
    "holds only regular files and directories under relative paths."
)


def pack_directory(directory: Path, dest: Path) -> BlobInfo:
    """Write ``directory``'s contents to the tar ``dest`` and return its digest and size.

    Entries are sorted, with mtime 0, owner 0/0 without names, mode 0o644 (files) or 0o755
    (directories). Symlinks to files are stored as the files they point to.
    """
    if not directory.is_dir():
        raise InvalidInputError(
            f"{str(directory)!r} is not a directory.",
            field="directory",
            value=str(directory),
            fix="Pass the directory that holds the model's files.",
        )
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for relative, path, is_dir in _walk(directory, skip=dest):
            info = tarfile.TarInfo(relative)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if is_dir:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.mode = 0o644
            with path.open("rb") as file:  # addfile copies in chunks: constant memory
                info.size = os.fstat(file.fileno()).st_size
                tar.addfile(info, file)
    return BlobInfo(digest=sha256_file(dest), size=dest.stat().st_size)


def _walk(top: Path, *, skip: Path) -> Iterator[tuple[str, Path, bool]]:
    """(relative posix name, path, is a directory) for everything below ``top``, sorted."""
    skip = skip.resolve()

    def walk(directory: Path) -> Iterator[tuple[str, Path, bool]]:
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            relative = entry.relative_to(top).as_posix()
            if entry.is_symlink() and entry.is_dir():
                raise _unpackable(top, relative, "is a symlink to a directory")
            if entry.is_dir():
                yield relative, entry, True
                yield from walk(entry)
            elif entry.is_file():
                if entry.resolve() != skip:
                    yield relative, entry, False
            else:
                raise _unpackable(top, relative, "is not a regular file or directory")

    return walk(top)


def _unpackable(top: Path, relative: str, reason: str) -> InvalidArtifactError:
    return InvalidArtifactError(
        f"Cannot package {relative!r} in {str(top)!r}: it {reason}.",
        field="directory",
        value=relative,
        fix="Replace it with a copy of the file or directory it stands for, or remove it.",
    )


HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
"""Whether this Python's tarfile has extraction filters (PEP 706: 3.11.4 and later; Debian 12's
3.11.2 has none)."""


def unpack(tar_path: Path, dest: Path) -> None:
    """Extract the tar ``tar_path`` into ``dest`` after checking every member.

    With tarfile's "data" filter where this Python has one; else (Python 3.11.0-3.11.3) only
    regular files and directories, what funade packs, are written, with the filter's modes and
    no owners, and a link is refused."""
    try:
        with tarfile.open(tar_path, "r:", tarinfo=_StrictTarInfo) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            if HAS_DATA_FILTER:
                tar.extractall(dest, filter="data")
            else:
                _extract_without_filter(tar, members, dest)
    except tarfile.TarError as exc:
        if HAS_DATA_FILTER and isinstance(exc, tarfile.FilterError):
            # belt and braces: the stdlib "data" filter refused what _check_member let through
            raise _invalid(exc.tarinfo.name, f"cannot be extracted safely ({exc})") from None
        raise _not_a_tar(repr(str(tar_path)), str(tar_path), exc) from None


def _extract_without_filter(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path
) -> None:
    """What the "data" filter would let through of checked ``members``, without it: directories
    and regular files (modes without setuid, setgid, sticky or group/other write bits; owned by
    whoever extracts). Links are refused before anything is written: in-package links can chain
    to a path outside, which only the filter's check of resolved paths catches."""
    for member in members:
        if member.issym() or member.islnk():
            raise _invalid(
                member.name,
                "is a link, which this Python (before 3.11.4: no tarfile extraction filter) "
                "cannot extract safely",
                fix="Run funade on Python 3.11.4 or later, or rebuild the package with `funade`, "
                "which stores links as the files they point to.",
            )
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    for member in members:
        target = root / posixpath.normpath(member.name)
        if not target.resolve().is_relative_to(root):  # nothing is a link, so never; but check
            raise _invalid(member.name, "resolves outside the package")
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None  # a regular file: _check_member let nothing else through
        target.unlink(missing_ok=True)  # a later member of the same name wins, as with tar
        with source, target.open("xb") as out:
            shutil.copyfileobj(source, out)
        target.chmod((member.mode & 0o755) | 0o600)


def iter_members(chunks: Iterable[bytes], *, max_member_bytes: int) -> Iterator[tuple[str, bytes]]:
    """Read a tar stream once, yielding ``(name, first max_member_bytes bytes)`` per file.

    Names are normalized (``./a/b`` becomes ``a/b``). Memory stays constant whatever the size.
    """
    try:
        with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|", tarinfo=_StrictTarInfo) as tar:
            for member in tar:
                name = _check_member(member)
                if member.isreg():
                    extracted = tar.extractfile(member)
                    assert extracted is not None  # regular files always have data
                    yield name, extracted.read(max_member_bytes)
    except tarfile.TarError as exc:
        raise _not_a_tar("The package stream", None, exc) from None


def _check_member(member: tarfile.TarInfo) -> str:
    """The member's normalized name, or ``InvalidArtifactError`` if it is unsafe."""
    name = member.name
    if not name or name.startswith("/") or posixpath.isabs(name):
        raise _invalid(name, "has an absolute path")
    normalized = posixpath.normpath(name)
    if normalized == ".." or normalized.startswith("../") or ".." in name.split("/"):
        raise _invalid(name, "has a '..' component that points outside the package")
    if member.issym():
        target = member.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(normalized), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise _invalid(name, f"is a link to {target!r}, outside the package")
    elif member.islnk():
        target = posixpath.normpath(member.linkname)
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise _invalid(name, f"is a link to {member.linkname!r}, outside the package")
    elif not (member.isreg() or member.isdir()):
        raise _invalid(name, "is a device or special file")
    return normalized


def _invalid(name: str, reason: str, *, fix: str = _FIX) -> InvalidArtifactError:
    return InvalidArtifactError(
        f"Package member {name!r} {reason}.", field="artifact", value=name, fix=fix
    )


def _not_a_tar(what: str, value: str | None, exc: tarfile.TarError) -> InvalidArtifactError:
    return InvalidArtifactError(
        f"{what} is not a complete uncompressed tar archive ({exc}).",
        field="artifact",
        value=value,
        fix="Upload the package exactly as `funade` built it; it may have been truncated "
        "or compressed.",
    )


# tarfile ends an archive silently at a truncated or garbled header; only the all-zero block
# that marks the real end (EOFHeaderError, absent from typeshed) should end it.
_END_OF_ARCHIVE: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]


class _StrictTarInfo(tarfile.TarInfo):
    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile_)
        except _END_OF_ARCHIVE:
            raise
        except tarfile.HeaderError as exc:
            raise tarfile.ReadError(f"the archive is truncated or damaged: {exc}") from None


class _ChunkReader:
    """A read-only file object over an iterable of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._current = b""
        self._offset = 0  # into self._current
        self._position = 0  # bytes handed out so far

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            data = self._current[self._offset :] + b"".join(self._chunks)
            self._current, self._offset = b"", 0
        else:
            parts: list[bytes] = []
            while size > 0:
                if self._offset >= len(self._current):
                    chunk = next(self._chunks, None)
                    if chunk is None:
                        break
                    self._current, self._offset = bytes(chunk), 0
                    continue
                piece = self._current[self._offset : self._offset + size]
                self._offset += len(piece)
                size -= len(piece)
                parts.append(piece)
            data = b"".join(parts)
        self._position += len(data)
        return data

    def tell(self) -> int:
        return self._position

    def write(self, b: bytes, /) -> int:
        raise OSError("read-only stream")

    def seek(self, pos: int, /) -> int:
        raise OSError("stream is not seekable")

    def close(self) -> None:
        self._chunks = iter(())
