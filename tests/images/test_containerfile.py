"""The Containerfile `funade build` writes, read back with BuildKit's parser, instruction by
instruction; its requirements.txt; the image tag convention."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from funade.artifacts.digest import sha256_file
from funade.errors import DigestMismatchError, InvalidArtifactError, InvalidInputError
from funade.images.containerfile import (
    base_for,
    default_tag,
    model_path,
    runtime_build,
    runtime_tag,
    version_build,
)
from funade.images.unpack import main as unpack_main
from funade.images.unpack import unpack_package
from tests.images.dockerfiles import labels, named, parse
from tests.images.records import COMMIT, DIGEST, record

HEX = DIGEST.removeprefix("sha256:")
SERVE_ARGS = ["--host", "0.0.0.0", "--port", "8080", "--name", "churn", "--model-version", "3"]


def _requirements(context: object) -> list[str]:
    files = {f.path: f for f in context.files}  # type: ignore[attr-defined]
    text = files["requirements.txt"].content.decode()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_a_baked_image_unpacks_the_package_at_its_digest_and_serves_it() -> None:
    context = version_build(record(), funade_version="0.1.0")
    commands = parse(context.containerfile)
    froms = [c.value for c in named(commands, "FROM")]
    assert froms == [("python:3.12-slim", "AS", "runtime"), ("runtime", "AS", "package"),
                     ("runtime",)]  # fmt: skip
    assert [c.flags for c in named(commands, "ARG")] == [(), ()]
    assert [c.value for c in named(commands, "ARG")] == [("PIP_INDEX_URL",),
                                                         ("PIP_EXTRA_INDEX_URL",)]  # fmt: skip
    copies = [(c.flags, c.value) for c in named(commands, "COPY")]
    assert copies == [
        ((), ("requirements.txt", "/opt/funade/requirements.txt")),
        ((), (f"model/sha256-{HEX}.tar", "/opt/funade/package.tar")),
        (("--from=package",), (f"/models/sha256-{HEX}", f"/models/sha256-{HEX}")),
    ]
    runs = named(commands, "RUN")
    assert "useradd --system --uid 10001 --gid 10001" in runs[0].value[0]
    assert runs[1].value == (
        "python -m pip install --no-cache-dir -r /opt/funade/requirements.txt",
    )
    assert runs[2].json
    unpack = ("python", "-m", "funade.images.unpack", "/opt/funade/package.tar", DIGEST)
    assert runs[2].value == (*unpack, f"/models/sha256-{HEX}")
    assert [c.value for c in named(commands, "EXPOSE")] == [("8080",)]
    assert [c.value for c in named(commands, "USER")] == [("10001:10001",)]
    assert not named(commands, "VOLUME")  # nothing to cache: the package is in the image
    (health,) = named(commands, "HEALTHCHECK")
    assert health.json
    assert health.value[:3] == ("CMD", "python", "-c")
    assert "http://127.0.0.1:8080/v2/health/ready" in health.value[3]
    assert "--start-period=60s" in health.flags
    (entry,) = named(commands, "ENTRYPOINT")
    assert entry.json
    assert list(entry.value) == ["funade", "serve", f"/models/sha256-{HEX}", *SERVE_ARGS]
    assert model_path(DIGEST) == f"/models/sha256-{HEX}"
    # the user is set after everything that needs root, the entrypoint last
    order = [c.cmd for c in commands]
    assert order.index("USER") > max(i for i, cmd in enumerate(order) if cmd in ("RUN", "COPY"))
    assert order[-1] == "ENTRYPOINT"
    assert labels(commands) == {
        "org.opencontainers.image.title": "churn:3",
        "org.opencontainers.image.version": "3",
        "org.opencontainers.image.description": "funade model server for churn:3",
        "org.opencontainers.image.revision": COMMIT,
        "org.opencontainers.image.source": "https://git.example/ml",
        "dev.funade.model": "churn",
        "dev.funade.version": "3",
        "dev.funade.digest": DIGEST,
        "dev.funade.git-commit": COMMIT,
        "dev.funade.flavor": "sklearn",
        "dev.funade.fetch": "false",
        "dev.funade.funade-version": "0.1.0",
        "dev.funade.serve-uds": "true",
    }
    assert [(f.path, f.digest, f.size) for f in context.files if f.digest] == [
        (f"model/sha256-{HEX}.tar", DIGEST, 1234)
    ]
    # the flavor's extra from this funade, the frameworks at the versions the model was saved with
    assert _requirements(context) == [
        "funade[sklearn]==0.1.0",
        "numpy==2.1.3",
        "scikit-learn==1.5.2",
        "skops==0.10.0",
    ]
    assert context.tag == f"funade/churn:3-{HEX[:12]}"
    assert context.notes == ()


def test_models_of_the_same_flavor_and_pins_share_every_layer_but_the_models() -> None:
    """What a builder's layer cache keys on: the instructions, and the files they copy. Up to the
    model's stage, the Containerfiles and requirements.txt of two models are the same bytes."""
    churn = version_build(record(), funade_version="0.1.0")
    other = version_build(
        record(model="fraud", version=7, artifact={"digest": "sha256:" + "cd" * 32, "size": 9}),
        funade_version="0.1.0",
    )
    shared = churn.containerfile.split("FROM runtime AS package")[0]
    assert other.containerfile.split("FROM runtime AS package")[0] == shared
    assert "churn" not in shared
    files = {f.path: f.content for f in churn.files}
    other_files = {f.path: f.content for f in other.files}
    assert files["requirements.txt"] == other_files["requirements.txt"]
    assert b"churn" not in (files["requirements.txt"] or b"")
    # the user first (any image on this base), then the packages
    order = [c.value[0].split()[0] for c in named(parse(shared), "RUN")]
    assert order == ["groupadd", "python"]


def test_fetch_bakes_nothing_in_and_serves_the_version_from_the_registry() -> None:
    context = version_build(record(), funade_version="0.1.0", fetch=True)
    commands = parse(context.containerfile)
    froms = [c.value for c in named(commands, "FROM")]
    assert froms == [("python:3.12-slim", "AS", "runtime"), ("runtime",)]
    assert not [f for f in context.files if f.digest]
    assert "/models" not in context.containerfile
    (entry,) = named(commands, "ENTRYPOINT")
    assert list(entry.value) == ["funade", "serve", "churn:3", "--digest", DIGEST, *SERVE_ARGS]
    env = " ".join(" ".join(c.value) for c in named(commands, "ENV"))
    assert "FUNADE_CACHE_DIR /var/cache/funade" in env
    assert "FUNADE_PROJECT default" in env  # where churn:3 is looked up; the key comes at start
    assert "FUNADE_URL" not in context.containerfile
    assert "FUNADE_API_KEY" not in context.containerfile
    assert [c.value for c in named(commands, "VOLUME")] == [("/var/cache/funade",)]
    assert labels(commands)["dev.funade.fetch"] == "true"
    assert labels(commands)["dev.funade.digest"] == DIGEST


def test_the_runtime_image_serves_the_version_named_at_start() -> None:
    context = runtime_build(funade_version="0.1.0")
    commands = parse(context.containerfile)
    (entry,) = named(commands, "ENTRYPOINT")
    assert list(entry.value) == ["funade", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert not named(commands, "CMD")  # `docker run IMAGE churn:3` appends the version
    assert _requirements(context) == ["funade[sklearn,onnx,xgboost,lightgbm,pandas,images]==0.1.0"]
    assert labels(commands)["dev.funade.runtime"] == "true"
    assert context.tag == runtime_tag("0.1.0") == "funade/runtime:0.1.0"
    chosen = runtime_build(funade_version="0.1.0", extras=["torch", "sklearn"], tag="r/x:1")
    assert _requirements(chosen) == ["funade[torch,sklearn]==0.1.0"]
    assert chosen.tag == "r/x:1"
    with pytest.raises(InvalidInputError, match="--extra 'postgres' is not an extra") as info:
        runtime_build(funade_version="0.1.0", extras=["postgres"])
    assert info.value.field == "--extra"


def test_lightgbm_gets_the_openmp_runtime_its_wheel_loads_and_other_extras_nothing() -> None:
    """LightGBM's wheel loads libgomp.so.1 from the system, which slim bases lack (found when
    the default runtime image was built and `import lightgbm` failed in it)."""
    commands = parse(runtime_build(funade_version="0.1.0").containerfile)
    runs = [" ".join(c.value) for c in named(commands, "RUN")]
    apt = [run for run in runs if "apt-get" in run]
    assert apt == [
        "apt-get update  && apt-get install -y --no-install-recommends libgomp1  "
        "&& rm -rf /var/lib/apt/lists/*"
    ]
    assert runs.index(apt[0]) == 1, "after the user, before pip: shared by images of the extra"
    sklearn = parse(runtime_build(funade_version="0.1.0", extras=["sklearn"]).containerfile)
    assert not [c for c in named(sklearn, "RUN") if "apt-get" in " ".join(c.value)]
    version = version_build(record(flavor="lightgbm", manifest={"requirements": {}}),
                            funade_version="0.1.0")  # fmt: skip
    assert "apt-get install -y --no-install-recommends libgomp1" in version.containerfile


def test_a_version_with_no_recorded_versions_gets_the_extra_unpinned_and_a_note() -> None:
    context = version_build(record(manifest={"requirements": {}}), funade_version="0.1.0")
    assert _requirements(context) == ["funade[sklearn]==0.1.0"]
    (note,) = context.notes
    assert "churn:3 recorded no framework versions" in note
    assert "Re-register" in note
    bare = version_build(record(manifest={"python_version": "3.11.2"}, lineage={"git": None}),
                         funade_version="0.1.0")  # fmt: skip
    assert bare.containerfile.startswith("# Written by `funade build`")
    assert "FROM python:3.11-slim AS runtime" in bare.containerfile
    assert "revision" not in bare.containerfile  # no git recorded: no commit label


def test_an_image_input_adds_the_images_extra_and_python_class_has_none() -> None:
    signature = {"inputs": [{"name": "x", "datatype": "UINT8", "shape": [-1], "image": {}}]}
    context = version_build(
        record(flavor="python_class", signature=signature, manifest={"requirements": {}}),
        funade_version="0.1.0",
    )
    assert _requirements(context) == ["funade[images]==0.1.0"]


def test_the_base_image_follows_the_recorded_python_or_is_given() -> None:
    assert base_for("3.12.4") == "python:3.12-slim"
    assert base_for("3.13.0rc1") == "python:3.13-slim"
    assert base_for("3.10.14") == "python:3.11-slim"  # funade needs 3.11
    assert base_for(None) == "python:3.11-slim"
    assert base_for("pypy") == "python:3.11-slim"
    local = version_build(record(), funade_version="0.1.0", base="localhost/debian-py:13")
    assert "FROM localhost/debian-py:13 AS runtime" in local.containerfile
    with pytest.raises(InvalidInputError, match="--base 'Python 3' is not an image name") as info:
        version_build(record(), funade_version="0.1.0", base="Python 3")
    assert info.value.field == "--base"


def test_a_funade_wheel_is_copied_into_the_context_and_installed_from_it(tmp_path: Path) -> None:
    wheel = tmp_path / "funade-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"zip")
    context = version_build(record(), funade_version="0.1.0", funade_wheel=wheel)
    assert _requirements(context)[0] == (
        "funade[sklearn] @ file:///opt/funade/wheels/funade-0.1.0-py3-none-any.whl"
    )
    assert [(f.path, f.source) for f in context.files if f.source] == [
        ("wheels/funade-0.1.0-py3-none-any.whl", wheel)
    ]
    assert "COPY wheels/ /opt/funade/wheels/" in context.containerfile
    with pytest.raises(InvalidInputError, match="is not a funade wheel") as info:
        version_build(record(), funade_version="0.1.0", funade_wheel=tmp_path / "x.tar.gz")
    assert info.value.field == "--funade-wheel"


def test_the_tag_convention() -> None:
    assert default_tag("churn", 3, DIGEST) == f"funade/churn:3-{HEX[:12]}"
    assert default_tag("churn", 3, DIGEST, repository="ghcr.io/acme/models/") == (
        f"ghcr.io/acme/models/churn:3-{HEX[:12]}"
    )
    upper, lower = default_tag("Churn", 3, DIGEST), default_tag("churn", 3, DIGEST)
    assert upper.startswith("funade/churn-")
    assert upper != lower  # two models never share a repository
    assert default_tag("churn_v2.a", 1, DIGEST).startswith("funade/churn-v2-a-")
    with pytest.raises(InvalidInputError, match="Version 0 is not a version number"):
        default_tag("churn", 0, DIGEST)
    with pytest.raises(InvalidInputError, match="is not a digest"):
        default_tag("churn", 1, "sha256:zz")
    with pytest.raises(InvalidInputError, match="--tag 'Churn:3' is not an image name") as info:
        version_build(record(), funade_version="0.1.0", tag="Churn:3")
    assert info.value.field == "--tag"


def _package_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unpack_checks_the_digest_and_extracts_read_only(tmp_path: Path) -> None:
    tar = _package_tar(tmp_path / "p.tar", {"funade.json": b"{}", "model/w.bin": b"w"})
    digest = sha256_file(tar)
    dest = unpack_package(tar, digest, tmp_path / "models" / "sha256-x")
    assert (dest / "model" / "w.bin").read_bytes() == b"w"
    assert oct((dest / "funade.json").stat().st_mode & 0o777) == "0o644"
    assert oct((dest / "model").stat().st_mode & 0o777) == "0o755"
    with pytest.raises(DigestMismatchError, match=f"hashes to {digest}, not sha256:0000") as info:
        unpack_package(tar, "sha256:" + "0" * 64, tmp_path / "other")
    assert info.value.field == "digest"
    assert not (tmp_path / "other").exists()
    evil = _package_tar(tmp_path / "e.tar", {"../escape": b"x"})
    with pytest.raises(InvalidArtifactError, match=r"'\.\.'"):
        unpack_package(evil, sha256_file(evil), tmp_path / "evil")
    assert not (tmp_path / "escape").exists()
    assert unpack_main([str(tar), "sha256:" + "0" * 64, str(tmp_path / "o2")]) == 1
    assert unpack_main(["only-one"]) == 2
