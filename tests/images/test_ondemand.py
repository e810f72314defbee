"""The image of a version built on demand (funade.images.ondemand) and the engine's command line
(funade.images.engine), against a stand-in `podman` script that records what it is asked and
answers as told: the cache by digest (and by the funade that made the image), the context handed
to the build, and every way it fails
(a package whose bytes are not its digest, one with no manifest, a build that fails, an engine
that hangs). The real builds are in test_podman_build.py and tests/deploy/backends/."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import funade
from funade.artifacts.tarball import pack_directory
from funade.errors import DigestMismatchError, InvalidArtifactError, InvalidInputError
from funade.images.containerfile import default_tag
from funade.images.engine import ContainerEngine, EngineError
from funade.images.ondemand import ensure_image, image_digest, image_is_current
from tests.serving.fakes import arithmetic_package

STAND_IN = """#!/bin/sh
echo "$*" >> "$RECORD"
case "$1 $2" in
  "image inspect")
    if [ -n "$HAVE_DIGEST" ]; then
      printf '[{"Config": {"Labels": {"dev.funade.digest": "%s", ' "$HAVE_DIGEST"
      if [ -n "$HAVE_WHEEL" ]; then printf '"dev.funade.funade-wheel": "%s", ' "$HAVE_WHEEL"; fi
      printf '"dev.funade.funade-version": "%s"}}}]' "$HAVE_FUNADE"
    else
      echo "Error: $3: image not known" >&2; exit 125
    fi ;;
  build*)
    cp "$5" "$CONTAINERFILE_COPY"; ls -R "$8" > "$CONTEXT_LISTING"
    echo "STEP 1/9: FROM base"; exit "${BUILD_STATUS:-0}" ;;
  "sleep "*) sleep 5 ;;
  "run "*) echo "Error: runc: the container could not be created" >&2; exit 126 ;;
  "ps "*) ;;
esac
"""


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ContainerEngine:
    script = tmp_path / "bin" / "podman"
    script.parent.mkdir()
    script.write_text(STAND_IN)
    script.chmod(0o755)
    monkeypatch.setenv("HAVE_FUNADE", funade.__version__)  # an image, if any, of this funade
    for name, file in (
        ("RECORD", "record"),
        ("CONTAINERFILE_COPY", "Containerfile"),
        ("CONTEXT_LISTING", "listing"),
    ):
        monkeypatch.setenv(name, str(tmp_path / file))
    return ContainerEngine.find("podman", executable=str(script))


@pytest.fixture
def package(tmp_path: Path) -> tuple[Path, str]:
    """The arithmetic model's package tar and its digest."""
    info = pack_directory(arithmetic_package(tmp_path / "calc"), tmp_path / "calc.tar")
    return tmp_path / "calc.tar", info.digest


def chunks(path: Path) -> Iterator[bytes]:
    yield path.read_bytes()


def build(
    engine: ContainerEngine, tmp_path: Path, digest: str, tar: Path, wheel: Path | None = None
) -> str:
    return ensure_image(
        engine,
        project="default",
        model="calc",
        version=2,
        digest=digest,
        fetch=lambda _digest: chunks(tar),
        scratch=tmp_path / "scratch",
        log=tmp_path / "build.log",
        funade_version=funade.__version__,
        base="localhost/base:1",
        funade_wheel=wheel,
    )


def built(tmp_path: Path) -> bool:
    """Whether the stand-in was asked to build."""
    return "build --format docker" in (tmp_path / "record").read_text()


def test_an_image_is_built_from_the_package_when_none_is_tagged_for_its_digest(
    engine: ContainerEngine, tmp_path: Path, package: tuple[Path, str]
) -> None:
    tar, digest = package
    tag = build(engine, tmp_path, digest, tar)
    assert tag == default_tag("calc", 2, digest)
    record = (tmp_path / "record").read_text().splitlines()
    assert record[0] == f"image inspect {tag}"
    assert record[1].startswith("build --format docker -f ")
    assert f" -t {tag} " in record[1]
    containerfile = (tmp_path / "Containerfile").read_text()
    assert "FROM localhost/base:1 AS runtime" in containerfile
    assert f'dev.funade.digest="{digest}"' in containerfile.replace("LABEL ", "")
    listing = (tmp_path / "listing").read_text()
    assert f"sha256-{digest.removeprefix('sha256:')}.tar" in listing
    assert "requirements.txt" in listing
    assert "STEP 1/9" in (tmp_path / "build.log").read_text()
    assert list((tmp_path / "scratch").iterdir()) == [], "the context is removed"


def test_an_image_tagged_for_the_digest_is_used_as_it_is(
    engine: ContainerEngine,
    tmp_path: Path,
    package: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tar, digest = package
    monkeypatch.setenv("HAVE_DIGEST", digest)
    assert image_digest(engine, default_tag("calc", 2, digest)) == digest
    tag = build(engine, tmp_path, digest, tar)
    assert tag == default_tag("calc", 2, digest)
    assert [line.split()[0] for line in (tmp_path / "record").read_text().splitlines()] == [
        "image",
        "image",
    ], "inspected, never built"


def test_an_image_of_the_same_tag_but_another_digest_is_rebuilt(
    engine: ContainerEngine,
    tmp_path: Path,
    package: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tar, digest = package
    monkeypatch.setenv("HAVE_DIGEST", digest[:-4] + "0000")
    build(engine, tmp_path, digest, tar)
    assert built(tmp_path)


def test_an_image_of_the_digest_made_by_another_funade_version_is_rebuilt(
    engine: ContainerEngine,
    tmp_path: Path,
    package: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tar, digest = package
    monkeypatch.setenv("HAVE_DIGEST", digest)
    monkeypatch.setenv("HAVE_FUNADE", "0.0.1")  # an older funade's image, under the same tag
    tag = build(engine, tmp_path, digest, tar)
    assert built(tmp_path), "rebuilt, not reused"
    containerfile = (tmp_path / "Containerfile").read_text().replace("LABEL ", "")
    assert f'dev.funade.funade-version="{funade.__version__}"' in containerfile
    assert "dev.funade.funade-wheel" not in containerfile, "funade from the index: no wheel"
    assert not image_is_current(engine, tag, digest, funade_version=funade.__version__)
    monkeypatch.setenv("HAVE_FUNADE", funade.__version__)
    assert image_is_current(engine, tag, digest, funade_version=funade.__version__)


def test_an_image_made_from_another_funade_wheel_is_rebuilt_and_one_from_this_wheel_reused(
    engine: ContainerEngine,
    tmp_path: Path,
    package: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tar, digest = package
    wheel = tmp_path / "wheels" / f"funade-{funade.__version__}-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"this checkout's wheel")
    ours = "sha256:" + hashlib.sha256(b"this checkout's wheel").hexdigest()
    monkeypatch.setenv("HAVE_DIGEST", digest)
    for labels in ("", "sha256:" + "0" * 64):  # from the index; another checkout's wheel
        monkeypatch.setenv("HAVE_WHEEL", labels)
        (tmp_path / "record").unlink(missing_ok=True)
        build(engine, tmp_path, digest, tar, wheel)
        assert built(tmp_path), f"an image with wheel label {labels!r} is rebuilt"
        containerfile = (tmp_path / "Containerfile").read_text().replace("LABEL ", "")
        assert f'dev.funade.funade-wheel="{ours}"' in containerfile
    monkeypatch.setenv("HAVE_WHEEL", ours)
    (tmp_path / "record").unlink()
    build(engine, tmp_path, digest, tar, wheel)
    assert not built(tmp_path), "this wheel's image is reused"
    wheel.write_bytes(b"the wheel rebuilt from changed source")
    (tmp_path / "record").unlink()
    build(engine, tmp_path, digest, tar, wheel)
    assert built(tmp_path), "a changed wheel (same path, new bytes) makes a new image"


def test_a_funade_wheel_that_cannot_be_read_is_refused_naming_it(
    engine: ContainerEngine, tmp_path: Path, package: tuple[Path, str]
) -> None:
    tar, digest = package
    missing = tmp_path / f"funade-{funade.__version__}-py3-none-any.whl"
    with pytest.raises(InvalidInputError) as info:
        build(engine, tmp_path, digest, tar, missing)
    assert info.value.field == "funade_wheel"
    assert info.value.value == str(missing)
    assert info.value.message == (
        f"The funade wheel {str(missing)!r} cannot be read: No such file or directory."
    )


def test_a_package_whose_bytes_are_not_its_digest_is_refused(
    engine: ContainerEngine, tmp_path: Path, package: tuple[Path, str]
) -> None:
    tar, _ = package
    other = "sha256:" + "ab" * 32
    with pytest.raises(DigestMismatchError) as info:
        build(engine, tmp_path, other, tar)
    assert info.value.message.startswith(f"The artifact store's package {other} hashes to sha256:")
    assert info.value.fix == "The stored bytes are damaged: register the model again."
    assert "build" not in (tmp_path / "record").read_text()


def test_a_package_without_a_manifest_is_refused(engine: ContainerEngine, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "model.bin").write_bytes(b"not a package")
    with tarfile.open(tmp_path / "empty.tar", "w") as tar:
        tar.add(tmp_path / "empty" / "model.bin", arcname="model.bin")
    digest = "sha256:" + hashlib.sha256((tmp_path / "empty.tar").read_bytes()).hexdigest()
    with pytest.raises(InvalidArtifactError) as info:
        build(engine, tmp_path, digest, tmp_path / "empty.tar")
    assert info.value.message == "The package has no funade.json."
    assert info.value.field == "manifest"


def test_a_build_that_fails_names_the_command_its_status_and_its_log(
    engine: ContainerEngine,
    tmp_path: Path,
    package: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tar, digest = package
    monkeypatch.setenv("BUILD_STATUS", "3")
    with pytest.raises(EngineError) as info:
        build(engine, tmp_path, digest, tar)
    assert info.value.message.startswith("`podman build --format docker -f ")
    assert info.value.message.endswith(
        f"failed (exit status 3): STEP 1/9: FROM base (all of its output: {tmp_path / 'build.log'})"
    )
    assert info.value.fix == "Fix what podman reports above."


def test_an_engine_command_that_fails_says_what_it_printed(engine: ContainerEngine) -> None:
    with pytest.raises(EngineError) as info:
        engine.run("image", "inspect", "nothing:1")
    assert info.value.message == (
        "`podman image inspect nothing:1` failed (exit status 125): "
        "Error: nothing:1: image not known"
    )
    assert info.value.field == "backend"


def test_an_engine_command_that_hangs_is_stopped(engine: ContainerEngine) -> None:
    with pytest.raises(EngineError) as info:
        engine.run("sleep", "now", timeout=0.5)
    assert info.value.message == "`podman sleep now` did not finish in 0.5 s."
    assert info.value.fix == "See whether `podman info` answers; a stuck engine needs a restart."


def test_inspect_output_that_is_not_an_image_is_no_digest(
    engine: ContainerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAVE_DIGEST", '"}]]not json')
    assert image_digest(engine, "x:1") is None
