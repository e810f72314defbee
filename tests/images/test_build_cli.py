"""`funade build` at the command line: the Containerfile and context of a registered version
written against a real control plane, and the errors (bad REF, a directory in use, an unknown
builder, none installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from funade.artifacts.digest import sha256_file
from funade.images.unpack import unpack_package
from funade.registry.manifest import MANIFEST_NAME
from tests.cli.conftest import Result
from tests.deploy.conftest import Plane, plane  # noqa: F401 - the control plane fixture
from tests.images.dockerfiles import labels, named, parse
from tests.serving.models import Arithmetic


@pytest.fixture
def remote(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> Plane:  # noqa: F811
    monkeypatch.setenv("FUNADE_URL", plane.url)
    monkeypatch.setenv("FUNADE_API_KEY", plane.client._http.headers["authorization"][7:])
    return plane


def test_containerfile_only_writes_the_context_of_a_registered_version(
    remote: Plane, cli: Callable[..., Result], tmp_path: Path
) -> None:
    remote.log(Arithmetic(), "calc")
    remote.log(Arithmetic(), "calc")
    remote.client.set_alias("calc", "production", 1)
    version = remote.client.get_version("calc", "production")
    digest = version.artifact.digest
    out = tmp_path / "ctx"
    done = cli("build", "calc@production", "--containerfile-only", str(out))
    assert done.code == 0, done.err
    assert f"Wrote the Containerfile and build context of calc:1 to {out}." in done.out
    assert "podman build --format docker -f" in done.out
    hex_ = digest.removeprefix("sha256:")
    package = out / "model" / f"sha256-{hex_}.tar"
    assert sha256_file(package) == digest  # the very bytes registered, re-hashed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "Containerfile",
        f"model/sha256-{hex_}.tar",
        "requirements.txt",
    ]
    commands = parse((out / "Containerfile").read_text())
    found = labels(commands)
    assert found["dev.funade.model"] == "calc"
    assert found["dev.funade.version"] == "1"
    assert found["dev.funade.digest"] == digest
    commit = (version.lineage.get("git") or {}).get("commit")
    assert found.get("dev.funade.git-commit") == commit
    (entry,) = named(commands, "ENTRYPOINT")
    assert list(entry.value)[:3] == ["funade", "serve", f"/models/sha256-{hex_}"]
    assert list(entry.value)[-4:] == ["--name", "calc", "--model-version", "1"]
    recorded = version.manifest["requirements"]
    assert recorded, "a python_class model records numpy's version"
    pins = (out / "requirements.txt").read_text().splitlines()
    assert [p for p in pins if "==" in p and not p.startswith("funade")] == [
        f"{name}=={pinned}" for name, pinned in sorted(recorded.items())
    ]
    # what the build's unpack step does with the context: the package, whole, at its digest
    unpacked = unpack_package(package, digest, tmp_path / "models" / f"sha256-{hex_}")
    assert (unpacked / MANIFEST_NAME).is_file()

    again = cli("build", "calc:2", "--containerfile-only", str(out))
    assert again.code == 2
    assert f"--containerfile-only '{out}' is a directory that is not empty" in again.err
    assert "Name a new or empty directory" in again.err
    fetch = cli("build", "calc", "--fetch", "--containerfile-only", str(tmp_path / "f"))
    assert fetch.code == 0, fetch.err
    assert not (tmp_path / "f" / "model").exists()
    latest = remote.client.get_version("calc", "2").artifact.digest
    fetching = f'"funade", "serve", "calc:2", "--digest", "{latest}"'
    assert fetching in (tmp_path / "f" / "Containerfile").read_text()


def test_bad_arguments_name_the_option_and_the_fix(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    bad_ref = cli("build", "calc:x", "--containerfile-only", str(tmp_path / "a"))
    assert bad_ref.code == 2
    assert "Model reference 'calc:x' has 'x' after ':'" in bad_ref.err
    assert not (tmp_path / "a").exists()
    neither = cli("build", "--containerfile-only", str(tmp_path / "a"))
    assert neither.code == 2
    assert "Name the version to build (REF), or pass --runtime." in neither.err
    both = cli("build", "calc:1", "--runtime", "--containerfile-only", str(tmp_path / "a"))
    assert both.code == 2
    assert "--runtime builds the image that serves any version" in both.err
    extra = cli("build", "calc:1", "--extra", "torch", "--containerfile-only", str(tmp_path))
    assert extra.code == 2
    assert "--extra applies to the runtime image" in extra.err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    on_file = cli("build", "--runtime", "--containerfile-only", str(a_file))
    assert on_file.code == 2
    assert f"--containerfile-only '{a_file}' is a file." in on_file.err
    unknown = cli("build", "--runtime", "--builder", "kaniko")
    assert unknown.code == 2
    assert "--builder 'kaniko' is not a builder funade knows" in unknown.err
    assert "Use one of: podman, buildah, docker" in unknown.err
    no_wheel = cli("build", "--runtime", "--funade-wheel", str(tmp_path / "nope.whl"))
    assert no_wheel.code == 2
    assert "--funade-wheel" in no_wheel.err
    assert "is not a file" in no_wheel.err


def test_the_runtime_containerfile_needs_no_control_plane(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    out = tmp_path / "runtime"
    out.mkdir()  # an empty directory is fine
    done = cli("build", "--runtime", "--extra", "sklearn", "--containerfile-only", str(out))
    assert done.code == 0, done.err
    commands = parse((out / "Containerfile").read_text())
    assert labels(commands)["dev.funade.extras"] == "sklearn"
    assert "funade[sklearn]==" in (out / "requirements.txt").read_text()


def test_with_no_builder_installed_it_says_how_to_install_one(tmp_path: Path) -> None:
    """The real command in a process whose PATH holds no directory with a builder."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {
        "PATH": str(empty),
        "HOME": str(tmp_path),
        "FUNADE_HOME": str(tmp_path / "home"),
        "FUNADE_URL": "http://127.0.0.1:9",  # never reached: the builder is looked for first
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    for args in (["calc:1"], ["--runtime"], ["calc:1", "--builder", "docker"]):
        done = subprocess.run(
            [sys.executable, "-m", "funade", "build", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        said = " ".join(done.stderr.split())
        assert "error: No image builder is installed: looked for" in said
        assert "sudo apt-get install podman" in said
        assert "--containerfile-only DIR" in said
        assert "Could not reach" not in said
    assert "'docker' (--builder)" in said
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.tar"))


FAKE_BUILDER = """#!/bin/bash
# A stand-in for podman or docker: records its arguments and the context it was given.
echo "$(basename "$0") $*" >> "$FAKE_LOG"
if [ "$1" = build ]; then
    context="${@: -1}"
    (cd "$context" && find . -type f | sort) >> "$FAKE_LOG"
    exit "${FAKE_BUILD_EXIT:-0}"
fi
exit "${FAKE_PUSH_EXIT:-0}"
"""


@pytest.fixture
def fake_builders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """podman and docker scripts first on PATH; returns the log they write."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name in ("podman", "docker"):
        script = bin_dir / name
        script.write_text(FAKE_BUILDER)
        script.chmod(0o755)
    log = tmp_path / "builder.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def test_a_found_builder_builds_the_written_context_and_pushes(
    remote: Plane, cli: Callable[..., Result], fake_builders: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote.log(Arithmetic(), "calc")
    digest = remote.client.get_version("calc", "1").artifact.digest
    hex_ = digest.removeprefix("sha256:")
    done = cli("build", "calc:1", "--tag", "registry.example.com/ml/calc:1", "--push")
    assert done.code == 0, done.err
    assert "Built registry.example.com/ml/calc:1 (calc:1) with podman." in done.out
    assert "Pushed registry.example.com/ml/calc:1." in done.out
    lines = fake_builders.read_text().splitlines()
    build = lines[0].split()
    assert build[:5] == ["podman", "build", "--format", "docker", "-f"]
    assert build[6:8] == ["-t", "registry.example.com/ml/calc:1"]
    assert build[5] == f"{build[8]}/Containerfile"
    assert lines[1:4] == ["./Containerfile", f"./model/sha256-{hex_}.tar", "./requirements.txt"]
    assert lines[4] == "podman push registry.example.com/ml/calc:1"
    fake_builders.unlink()
    plain = cli("build", "calc:1", "--tag", "127.0.0.1:5000/ml/calc:1", "--push", "--no-tls-verify")
    assert plain.code == 0, plain.err
    assert fake_builders.read_text().splitlines()[-1] == (
        "podman push --tls-verify=false 127.0.0.1:5000/ml/calc:1"
    )
    assert not Path(build[8]).exists()  # the temporary context is gone

    fake_builders.unlink()
    chosen = cli("build", "--runtime", "--builder", "docker")
    assert chosen.code == 0, chosen.err
    assert fake_builders.read_text().split()[:2] == ["docker", "build"]  # no --format for docker

    monkeypatch.setenv("FAKE_BUILD_EXIT", "1")
    failed = cli("build", "--runtime")
    assert failed.code == 2
    assert "podman failed to build funade/runtime:" in failed.err
    assert "(exit status 1)" in failed.err
    monkeypatch.setenv("FAKE_BUILD_EXIT", "0")
    monkeypatch.setenv("FAKE_PUSH_EXIT", "1")
    refused = cli("build", "--runtime", "--push")
    assert refused.code == 2
    assert "podman could not push funade/runtime:" in refused.err
    assert "(--push) to the registry its --tag names" in refused.err
    assert "podman login REGISTRY" in refused.err
    assert "--no-tls-verify" in refused.err
    both = cli("build", "--runtime", "--push", "--containerfile-only", "x")
    assert both.code == 2
    assert "--push needs an image, and --containerfile-only builds none" in both.err


def test_no_tls_verify_needs_push_and_a_builder_that_can_push_so(
    remote: Plane, cli: Callable[..., Result], fake_builders: Path
) -> None:
    alone = cli("build", "--runtime", "--no-tls-verify")
    assert alone.code == 2
    assert "--no-tls-verify applies to --push, and nothing is pushed." in alone.err
    assert "Add --push, or leave --no-tls-verify out." in alone.err
    docker = cli("build", "--runtime", "--builder", "docker", "--push", "--no-tls-verify")
    assert docker.code == 2
    assert "--no-tls-verify is for podman and buildah; docker's push has no such flag." in (
        docker.err
    )
    assert "insecure-registries in docker's daemon.json" in docker.err
    assert not fake_builders.exists()  # refused before anything was built


def test_a_package_that_cannot_be_fetched_leaves_no_context(
    remote: Plane, cli: Callable[..., Result], tmp_path: Path
) -> None:
    remote.log(Arithmetic(), "calc")
    digest = remote.client.get_version("calc", "1").artifact.digest
    blobs = [p for p in remote.home.rglob(digest.removeprefix("sha256:")) if p.is_file()]
    assert blobs, "the artifact store keeps the blob under its hex"
    for blob in blobs:
        blob.unlink()
    out = tmp_path / "ctx"
    done = cli("build", "calc:1", "--containerfile-only", str(out))
    assert done.code == 2
    assert digest in done.err
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    again = cli("build", "calc:1", "--containerfile-only", str(empty))
    assert again.code == 2
    assert list(empty.iterdir()) == []  # emptied again, kept: it was there before
