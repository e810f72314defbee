from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from funade.artifacts import iter_members, pack_directory, sha256_file, tarball, unpack
from funade.errors import InvalidArtifactError, InvalidInputError


@pytest.fixture(params=["data-filter", "no-filter"])
def extraction(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """unpack with tarfile's "data" filter, and as on a Python that has none (before 3.11.4,
    such as Debian 12's 3.11.2)."""
    if request.param == "data-filter" and not tarball.HAS_DATA_FILTER:
        pytest.skip("this Python's tarfile has no extraction filters (before 3.11.4)")
    if request.param == "no-filter":
        monkeypatch.setattr(tarball, "HAS_DATA_FILTER", False)
    return str(request.param)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "weights").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "MLmodel").write_text("flavor: sklearn\n")
    (root / "weights" / "layer.bin").write_bytes(os.urandom(300_000))
    (root / "zz-last.txt").write_text("z")
    return root


def _tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes = b"data") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def _chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# Packing ------------------------------------------------------------------------------------


def test_packing_is_deterministic(model_dir: Path, tmp_path: Path) -> None:
    first = pack_directory(model_dir, tmp_path / "one.tar")
    for path in [model_dir, *model_dir.rglob("*")]:
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (model_dir / "MLmodel").chmod(0o600)
    second = pack_directory(model_dir, tmp_path / "two.tar")
    assert first == second
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    assert first.digest == sha256_file(tmp_path / "one.tar")
    assert first.size == (tmp_path / "one.tar").stat().st_size

    (model_dir / "zz-last.txt").write_text("y")
    assert pack_directory(model_dir, tmp_path / "three.tar").digest != first.digest


def test_packed_entries_are_sorted_and_normalized(model_dir: Path, tmp_path: Path) -> None:
    pack_directory(model_dir, tmp_path / "model.tar")
    with tarfile.open(tmp_path / "model.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "MLmodel",
        "empty",
        "weights",
        "weights/layer.bin",
        "zz-last.txt",
    ]
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (
            0,
            0,
            0,
            "",
            "",
        )
        assert member.mode == (0o755 if member.isdir() else 0o644)


def test_pack_then_unpack_round_trips(model_dir: Path, tmp_path: Path, extraction: str) -> None:
    pack_directory(model_dir, tmp_path / "model.tar")
    unpack(tmp_path / "model.tar", tmp_path / "out")
    for path in model_dir.rglob("*"):
        copy = tmp_path / "out" / path.relative_to(model_dir)
        assert copy.is_dir() if path.is_dir() else copy.read_bytes() == path.read_bytes()
    assert (tmp_path / "out" / "empty").is_dir()


def test_pack_stores_file_symlinks_as_files_and_skips_its_own_output(
    model_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "shared.bin"
    outside.write_bytes(b"shared weights")
    (model_dir / "link.bin").symlink_to(outside)
    info = pack_directory(model_dir, model_dir / "package.tar")
    members = dict(
        iter_members(_chunks((model_dir / "package.tar").read_bytes()), max_member_bytes=99)
    )
    assert members["link.bin"] == b"shared weights"
    assert "package.tar" not in members
    assert info.digest == sha256_file(model_dir / "package.tar")


def test_pack_refuses_directory_symlinks_and_special_files(model_dir: Path, tmp_path: Path) -> None:
    (model_dir / "weights" / "loop").symlink_to(model_dir)
    with pytest.raises(
        InvalidArtifactError,
        match=r"Cannot package 'weights/loop' in '.*': it is a symlink to a directory\.",
    ):
        pack_directory(model_dir, tmp_path / "model.tar")
    (model_dir / "weights" / "loop").unlink()
    os.mkfifo(model_dir / "pipe")
    with pytest.raises(
        InvalidArtifactError, match=r"'pipe' in '.*': it is not a regular file"
    ) as caught:
        pack_directory(model_dir, tmp_path / "model.tar")
    assert caught.value.value == "pipe"


def test_pack_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="is not a directory") as caught:
        pack_directory(tmp_path / "missing", tmp_path / "model.tar")
    assert caught.value.field == "directory"


# Unsafe members -----------------------------------------------------------------------------

UNSAFE = [
    pytest.param(_file("../evil"), "'../evil' has a '..' component", id="parent"),
    pytest.param(_file("ok/../../evil"), "'ok/../../evil' has a '..' component", id="nested"),
    pytest.param(_file("/tmp/evil"), "'/tmp/evil' has an absolute path", id="absolute"),
    pytest.param(
        _special("passwd", tarfile.SYMTYPE, "/etc/passwd"),
        "'passwd' is a link to '/etc/passwd', outside the package",
        id="symlink-absolute",
    ),
    pytest.param(
        _special("sub/up", tarfile.SYMTYPE, "../../evil"),
        "'sub/up' is a link to '../../evil', outside the package",
        id="symlink-relative",
    ),
    pytest.param(
        _special("hard", tarfile.LNKTYPE, "../evil"),
        "'hard' is a link to '../evil', outside the package",
        id="hardlink",
    ),
    pytest.param(
        _special("tty", tarfile.CHRTYPE), "'tty' is a device or special file", id="device"
    ),
    pytest.param(_special("fifo", tarfile.FIFOTYPE), "'fifo' is a device", id="fifo"),
]


@pytest.mark.parametrize(("member", "message"), UNSAFE)
def test_unpack_refuses_unsafe_members(
    member: tuple[tarfile.TarInfo, bytes | None], message: str, tmp_path: Path, extraction: str
) -> None:
    name = member[0].name
    archive = tmp_path / "evil.tar"
    archive.write_bytes(_tar_bytes(_file("fine.txt"), member))
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(InvalidArtifactError) as caught:
        unpack(archive, dest)
    error = caught.value
    assert message in error.message
    assert (error.field, error.value) == ("artifact", name)
    assert error.fix is not None
    assert not dest.exists()  # checked before anything was written
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "deep" / "evil").exists()


@pytest.mark.parametrize(("member", "message"), UNSAFE)
def test_iter_members_refuses_unsafe_members(
    member: tuple[tarfile.TarInfo, bytes | None], message: str
) -> None:
    data = _tar_bytes(_file("fine.txt"), member)
    members = iter_members(_chunks(data), max_member_bytes=10)
    assert next(members) == ("fine.txt", b"data")
    with pytest.raises(InvalidArtifactError, match=re.escape(message)):
        next(members)


def test_links_inside_the_package_are_allowed(tmp_path: Path) -> None:
    archive = tmp_path / "links.tar"
    archive.write_bytes(
        _tar_bytes(
            _file("data/weights.bin", b"w"),
            _special("data/alias.bin", tarfile.SYMTYPE, "weights.bin"),
            _special("hard.bin", tarfile.LNKTYPE, "data/weights.bin"),
        )
    )
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "alias.bin").read_bytes() == b"w"
    assert (tmp_path / "out" / "hard.bin").read_bytes() == b"w"


def test_without_the_data_filter_modes_are_the_filters_and_links_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tarball, "HAS_DATA_FILTER", False)
    setuid, script, twice = _file("setuid", b"s"), _file("bin/run.sh", b"r"), _file("twice", b"1")
    setuid[0].mode, script[0].mode = 0o4777, 0o775
    archive = tmp_path / "modes.tar"
    archive.write_bytes(_tar_bytes(setuid, script, twice, _file("twice", b"2")))
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "setuid").stat().st_mode & 0o7777 == 0o755
    assert (tmp_path / "out" / "bin" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (tmp_path / "out" / "twice").read_bytes() == b"2"  # the last one wins, as with tar

    links = tmp_path / "links.tar"
    links.write_bytes(
        _tar_bytes(
            _file("data/weights.bin", b"w"),
            _special("data/alias.bin", tarfile.SYMTYPE, "weights.bin"),
        )
    )
    with pytest.raises(InvalidArtifactError) as caught:
        unpack(links, tmp_path / "links")
    error = caught.value
    assert "Package member 'data/alias.bin' is a link, which this Python (before 3.11.4" in (
        error.message
    )
    assert (error.field, error.value) == ("artifact", "data/alias.bin")
    assert error.fix is not None
    assert "Python 3.11.4 or later" in error.fix
    assert not (tmp_path / "links").exists()  # refused before anything was written


# Not a tar, truncated -----------------------------------------------------------------------

NOT_TARS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("random", lambda _tar: os.urandom(5000)),
    ("empty", lambda _tar: b""),
    ("gzip", gzip.compress),
    ("text", lambda _tar: b"PK\x03\x04 this is a zip, not a tar" * 40),
]


@pytest.mark.parametrize(("kind", "make"), NOT_TARS, ids=[kind for kind, _ in NOT_TARS])
def test_not_a_tar_is_an_invalid_artifact(
    kind: str, make: Callable[[bytes], bytes], model_dir: Path, tmp_path: Path
) -> None:
    pack_directory(model_dir, tmp_path / "model.tar")
    bad = tmp_path / f"{kind}.bin"
    bad.write_bytes(make((tmp_path / "model.tar").read_bytes()))
    with pytest.raises(InvalidArtifactError, match="is not a complete uncompressed tar") as caught:
        unpack(bad, tmp_path / "out")
    assert str(bad) in caught.value.message
    with pytest.raises(InvalidArtifactError, match="The package stream is not a complete"):
        list(iter_members(_chunks(bad.read_bytes()), max_member_bytes=10))


def _cut_points(data: bytes) -> dict[str, int]:
    """Offsets to cut a two-file tar at (the first file's header is at 0)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        second = tar.getmembers()[1]
    return {
        "mid-data": second.offset_data + 100,
        "mid-header": second.offset + 200,
        "at-a-header-boundary": second.offset,
        "before-end-marker": second.offset_data + 1024,
    }


@pytest.mark.parametrize(
    "where", ["mid-data", "mid-header", "at-a-header-boundary", "before-end-marker"]
)
def test_truncated_archives_are_rejected(where: str, tmp_path: Path) -> None:
    data = _tar_bytes(_file("a.txt", b"a" * 700), _file("b.bin", b"b" * 1024))
    cut = data[: _cut_points(data)[where]]
    with pytest.raises(InvalidArtifactError, match="is not a complete uncompressed tar"):
        list(iter_members(_chunks(cut, size=100), max_member_bytes=10))
    (tmp_path / "cut.tar").write_bytes(cut)
    with pytest.raises(InvalidArtifactError, match="is not a complete uncompressed tar"):
        unpack(tmp_path / "cut.tar", tmp_path / "out")


# Streaming inspection -----------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [7, 511, 1 << 20])
def test_iter_members_yields_regular_files_with_their_first_bytes(
    chunk_size: int, model_dir: Path, tmp_path: Path
) -> None:
    pack_directory(model_dir, tmp_path / "model.tar")
    data = (tmp_path / "model.tar").read_bytes()
    layer = (model_dir / "weights" / "layer.bin").read_bytes()
    members = list(iter_members(_chunks(data, chunk_size), max_member_bytes=1000))
    assert members == [
        ("MLmodel", b"flavor: sklearn\n"),
        ("weights/layer.bin", layer[:1000]),
        ("zz-last.txt", b"z"),
    ]


def test_iter_members_normalizes_dot_slash_names() -> None:
    data = _tar_bytes(_file("./MLmodel", b"x"), _file("./a/./b.txt", b"y"))
    assert list(iter_members(_chunks(data), max_member_bytes=5)) == [
        ("MLmodel", b"x"),
        ("a/b.txt", b"y"),
    ]
