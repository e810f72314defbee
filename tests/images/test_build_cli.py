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
