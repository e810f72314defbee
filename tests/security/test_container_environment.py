"""What a replica in a container is given, exactly (the container backend, with real podman):
a control plane whose environment holds the database URL, artifact-store credentials, an admin
key and variables of its own starts a replica; the container's process sees its image's
environment plus what funade gives it on purpose (the API's URL, the version's digest, its own
token, the revision's env), none of the control plane's secrets anywhere (environment, command
line, labels), no capability, no way to gain one, and its own loopback, not the host's (where
the control plane, the gateway and PostgreSQL listen).

The local backend's counterpart is tests/security/test_replica_environment.py."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from funade.deploy.backends import ReplicaState, RuntimeConfig
from funade.deploy.backends.container import ContainerBackend
from funade.images.containerfile import default_tag
from funade.images.engine import ContainerEngine
from tests.deploy.backends.test_container import CHURN, make_backend, ready, spec_of
from tests.deploy.test_local_backend import Blobs
from tests.images.podman import (  # noqa: F401 - fixtures
    needs_podman,
    podman,
    podman_ready_fixture,
    remove_image,
    wheel_fixture,
)
from tests.security.test_replica_environment import API_URL, SECRETS
from tests.serving.fakes import arithmetic_package

pytestmark = [needs_podman, pytest.mark.timeout(900)]

GIVEN = {
    "COLUMNS",
    "FUNADE_PROJECT",
    "FUNADE_URL",
    "FUNADE_MODEL_DIGEST",
    "FUNADE_REPLICA_TOKEN",
    "FUNADE_CPU_SCHEDULING",
}
"""What the container backend gives a replica on purpose (funade.deploy.backends.container)."""
ENGINE = {"container", "HOSTNAME", "TERM"}
"""What the engine itself sets in every container."""


@pytest.fixture(scope="module")
def digest(tmp_path_factory: pytest.TempPathFactory, blobs: Blobs) -> Iterator[str]:
    digest = blobs.add(arithmetic_package(tmp_path_factory.mktemp("pkg") / "calc"))
    yield digest
    remove_image(default_tag(CHURN, 1, digest), force=True)  # built here, by start


@pytest.fixture(scope="module")
def blobs() -> Blobs:
    return Blobs()


@pytest.fixture
def backend(
    podman_ready: None,
    tmp_path: Path,
    wheel: Path,
    blobs: Blobs,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ContainerBackend]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    backend = make_backend(tmp_path / "containers", wheel, blobs, uuid.uuid4().hex[:12])
    backend.api_url = lambda: API_URL
    yield backend
    backend.stop_all(grace_seconds=2)
    backend.close()


def test_a_container_gets_its_image_env_and_what_funade_gives_it_nothing_else(
    backend: ContainerBackend, digest: str
) -> None:
    spec = spec_of(digest, runtime=RuntimeConfig(env={"MODEL_MARKER": "yes"}))
    started = backend.start(spec)
    [replica] = ready(backend)
    name = f"funade-{replica.id}"
    raw = podman("exec", name, "cat", "/proc/1/environ").stdout
    env = dict(item.split("=", 1) for item in raw.split("\0") if item)
    image = json.loads(podman("inspect", "--format", "{{json .ImageName}}", name).stdout)
    baked = json.loads(podman("image", "inspect", "--format", "{{json .Config.Env}}", image).stdout)
    from_image = {item.split("=", 1)[0] for item in baked}

    assert set(env) - from_image - GIVEN - ENGINE - {"MODEL_MARKER"} == set()
    assert env["FUNADE_URL"] == API_URL
    assert env["FUNADE_MODEL_DIGEST"] == digest
    assert env["FUNADE_REPLICA_TOKEN"] == started.token
    assert env["FUNADE_PROJECT"] == "default"
    assert env["MODEL_MARKER"] == "yes"

    inspected = podman("inspect", name).stdout
    for secret, value in SECRETS.items():
        assert value not in raw, f"{secret}'s value in the container's environment"
        if secret not in from_image:  # the image's FUNADE_HOME is its own, checked above
            assert f"{secret}=" not in raw, f"{secret} in the container's environment"
        assert value not in inspected, f"{secret}'s value in the container's configuration"
    args = podman("inspect", "--format", "{{json .Args}}", name).stdout
    assert started.token not in args, "the token on the server's command line"

    status = podman("exec", name, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["CapPrm"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Uid"].split()[0] == "10001"


def test_a_container_does_not_reach_the_hosts_loopback(
    backend: ContainerBackend, digest: str
) -> None:
    """A service on the host's 127.0.0.1 (as the control plane, the gateway and a trust-
    authenticated PostgreSQL are) is out of the replica's reach: its 127.0.0.1 is its own."""
    backend.start(spec_of(digest))
    [replica] = ready(backend)
    assert replica.state is ReplicaState.READY

    accepted: list[bool] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(8)
        port = listener.getsockname()[1]

        def accept() -> None:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(True)
            connection.close()

        waiter = threading.Thread(target=accept)
        waiter.start()
        probe = (
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
            "except OSError as exc:\n"
            "    print('refused', type(exc).__name__)\n"
            "    sys.exit(0)\n"
            "print('connected')\n"
        )
        done = podman("exec", f"funade-{replica.id}", "python", "-c", probe, check=False)
        waiter.join(10)
    assert done.stdout.startswith("refused"), done.stdout + done.stderr
    assert accepted == [], "the host's listener saw a connection from the container"


def test_the_engine_sees_no_secret_on_its_command_line(
    backend: ContainerBackend, digest: str
) -> None:
    """Values reach the container through the engine's environment (``--env NAME``, no value),
    so the token and the revision's env are on no command line another user could read."""
    seen: list[tuple[str, ...]] = []
    real = backend.engine

    class Recording(ContainerEngine):
        def run(self, *args: str, **options: Any) -> subprocess.CompletedProcess[str]:
            seen.append(args)
            return real.run(*args, **options)

    backend.engine = Recording(real.name, real.executable)
    spec = spec_of(digest, runtime=RuntimeConfig(env={"MODEL_SECRET": "s3cr3t-7"}))
    started = backend.start(spec)
    [replica] = ready(backend)
    [run] = [args for args in seen if args[0] == "run"]
    assert "--env=MODEL_SECRET" in run
    assert "--env=FUNADE_REPLICA_TOKEN" in run
    for args in seen:
        line = " ".join(args)
        assert "s3cr3t-7" not in line
        assert started.token not in line
        assert all(value not in line for value in SECRETS.values())
    raw = podman("exec", f"funade-{replica.id}", "cat", "/proc/1/environ").stdout
    assert "MODEL_SECRET=s3cr3t-7" in raw.split("\0")
