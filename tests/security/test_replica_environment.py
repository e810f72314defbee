"""What a replica is given, exactly: a real replica started through the local backend by a
control plane whose environment holds the database URL, artifact-store (S3) credentials, an
admin key and variables of its own. The replica's environment is the allowlist plus what funade
gives it on purpose (the API's URL, the version's digest, its own revocable token); none of the
control plane's secrets are in the environment or on the command line of any of its processes.

tests/security/test_isolation.py asks the same of model code in a whole `funade up` as root (it
reads a few variables from inside the model); this test reads every variable from outside, as
any user."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from funade.deploy.backends import ReplicaState, RuntimeConfig
from funade.deploy.backends.local import LocalBackend
from funade.sandbox.env import PASSED
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from tests.deploy.conftest import until
from tests.deploy.test_local_backend import Blobs, spec_of
from tests.serving.fakes import arithmetic_package

API_URL = "http://127.0.0.1:8470"

SECRETS = {
    "FUNADE_DATABASE_URL": "postgresql+psycopg://funade:db-password-1@db.internal/funade",
    "FUNADE_ARTIFACTS_URL": "s3://the-bucket/models",
    "FUNADE_ARTIFACTS_OPTIONS": '{"key": "AKIAEXAMPLEKEY", "secret": "s3-secret-2"}',
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY2",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-3",
    "AWS_SESSION_TOKEN": "aws-session-4",
    "FUNADE_API_KEY": "fnd_000000000001_admin-secret-5",
    "FUNADE_HOME": "/the/control/planes/home",
    "PARENT_ONLY_VARIABLE": "parent-only-6",
}
"""What the control plane's environment holds and no replica may see (names and values)."""

GIVEN = {
    "HOME",
    "TMPDIR",
    "PYTHONUNBUFFERED",
    "COLUMNS",
    "FUNADE_PROJECT",
    "FUNADE_URL",
    "FUNADE_MODEL_DIGEST",
    "FUNADE_REPLICA_TOKEN",
    "FUNADE_CPU_SCHEDULING",
}
"""What the local backend gives a replica on purpose (see funade.deploy.backends.local)."""


@pytest.fixture
def blobs() -> Blobs:
    return Blobs()


@pytest.fixture
def backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blobs: Blobs
) -> Iterator[LocalBackend]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    backend = LocalBackend(
        tmp_path / "replicas",
        sandbox=Sandbox.from_settings(Settings(home=tmp_path / "home")),
        fetch=blobs.open,
        api_url=lambda: API_URL,
    )
    yield backend
    backend.stop_all(grace_seconds=5)
    backend.close()


def _group(pid: int) -> list[int]:
    """The processes of the replica's process group (the server and its workers)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[2]) == pid:
            members.append(int(stat.parent.name))
    return members


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if item)


def test_a_replica_gets_the_allowlist_and_what_funade_gives_it_nothing_else(
    backend: LocalBackend, blobs: Blobs, tmp_path: Path
) -> None:
    digest = blobs.add(arithmetic_package(tmp_path / "pkg" / "calc"))
    spec = spec_of(digest, runtime=RuntimeConfig(workers=2, env={"MODEL_MARKER": "yes"}))
    replica = backend.start(spec)
    until(
        lambda: [r.state for r in backend.replicas()] == [ReplicaState.READY], 60, "replica ready"
    )
    pid = int(json.loads((backend.root / f"{replica.id}.json").read_text())["pid"])
    env = _environ(pid)

    unexpected = {
        name
        for name in env
        if name not in PASSED | GIVEN | {"MODEL_MARKER"} and not name.startswith("LC_")
    }
    assert unexpected == set(), "variables of the parent beyond the allowlist"
    assert env["FUNADE_URL"] == API_URL
    assert env["FUNADE_MODEL_DIGEST"] == digest
    assert env["FUNADE_REPLICA_TOKEN"] == replica.token
    assert env["FUNADE_PROJECT"] == "default"
    assert env["MODEL_MARKER"] == "yes"

    processes = _group(pid)
    assert len(processes) >= 3, "the server and its two workers"
    for member in processes:
        environ = Path(f"/proc/{member}/environ").read_bytes()
        cmdline = Path(f"/proc/{member}/cmdline").read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in environ, f"{name}'s value in {member}'s environment"
            assert value.encode() not in cmdline, f"{name}'s value on {member}'s command line"
            assert f"{name}=".encode() not in environ, f"{name} in {member}'s environment"


def test_without_a_known_api_url_a_replica_gets_none(tmp_path: Path, blobs: Blobs) -> None:
    """Before the control plane's server is bound (port 0), a replica is started without
    ``FUNADE_URL`` rather than with a wrong one."""
    digest = blobs.add(arithmetic_package(tmp_path / "pkg" / "calc"))
    backend = LocalBackend(
        tmp_path / "replicas",
        sandbox=Sandbox.from_settings(Settings(home=tmp_path / "home")),
        fetch=blobs.open,
    )
    try:
        replica = backend.start(spec_of(digest))
        pid = int(json.loads((backend.root / f"{replica.id}.json").read_text())["pid"])
        env = _environ(pid)
        assert "FUNADE_URL" not in env
        assert env["FUNADE_MODEL_DIGEST"] == digest
    finally:
        backend.stop_all(grace_seconds=5)
        backend.close()
