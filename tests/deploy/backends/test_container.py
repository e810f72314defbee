"""The container backend with real podman as root: images of fake models built on demand (on
the base scripts/podman-setup makes, funade from a wheel of this checkout) and cached by digest,
replicas that become ready and answer only with their token, adoption by a new backend, a
container killed and one whose model crashes (EXITED with the reason), graceful drain, and the
docker path through Debian's podman-docker shim.

Skipped only where podman is not installed (CI installs it: .ci/run runs scripts/podman-setup).
The first run on a machine builds the images' dependency layer (about 30 s); later runs reuse
it from podman's build cache."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import funade
from funade.deploy.backends import BackendContext, ReplicaState, RuntimeConfig
from funade.deploy.backends import make_backend as make_backend_for
from funade.deploy.backends.container import (
    LABEL,
    SOCKET_MOUNT,
    ContainerBackend,
    bridged_url,
    create_backend,
    owner_of,
)
from funade.deploy.backends.sockets import socket_base
from funade.deploy.reconcile import Desired, Reconciler
from funade.deploy.replicaurl import ReplicaHTTP
from funade.errors import InvalidInputError
from funade.images.containerfile import default_tag
from funade.images.engine import ContainerEngine
from funade.images.ondemand import ensure_image, image_digest
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from tests.deploy.conftest import until
from tests.deploy.test_local_backend import Blobs, converge
from tests.deploy.test_local_backend import spec_of as any_spec_of
from tests.images.podman import (  # noqa: F401 - fixtures
    BASE,
    needs_podman,
    podman,
    podman_ready_fixture,
    remove_image,
    wheel_fixture,
)
from tests.serving.fakes import arithmetic_package, package
from tests.serving.models import CrashOnLoad, Paced

pytestmark = [needs_podman, pytest.mark.timeout(900)]

SHIM = Path("/usr/bin/docker")
"""Debian's podman-docker: podman behind a `docker` command (another docker may come first on
PATH: this test names the shim's path)."""
SAMPLE = {"x": np.array([[1.0, 2.0], [3.0, 4.0]])}
CHURN = f"churn-{uuid.uuid4().hex[:8]}"
"""This session's model: its image is built here from this checkout's wheel (an image of the
same package tagged by another checkout's tests, whose funade may differ, is never reused)."""


def spec_of(digest: str, deployment: str = CHURN, **more: Any) -> Any:
    return any_spec_of(digest, deployment, **more)


@pytest.fixture(scope="module")
def blobs() -> Blobs:
    return Blobs()


@pytest.fixture(scope="module")
def source(
    podman_ready: None, wheel: Path, tmp_path_factory: pytest.TempPathFactory, blobs: Blobs
) -> Iterator[str]:
    """The digest of the arithmetic package, the image of ``churn:1`` of it built first: on a
    machine whose builder holds no layer yet, that build installs funade's dependencies (a
    minute or more), which no test's own deadline should have to cover."""
    work = tmp_path_factory.mktemp("pkg")
    digest = blobs.add(arithmetic_package(work / "calc"))
    ensure_image(
        ContainerEngine.find("podman"),
        project="default",
        model=CHURN,
        version=1,
        digest=digest,
        fetch=blobs.open,
        scratch=work / "builds",
        log=work / "build.log",
        funade_version=funade.__version__,
        base=BASE,
        funade_wheel=wheel,
    )
    yield digest
    remove_image(default_tag(CHURN, 1, digest), force=True)


def predict(url: str, token: str, model: str = CHURN) -> list[float]:
    """The ``double`` output for the row [1, 2]."""
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
    with ReplicaHTTP(30) as http:
        response = http.post(
            url,
            f"/v2/models/{model}/infer",
            json=body,
            headers={"authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    return list({o["name"]: o["data"] for o in response.json()["outputs"]}["double"])


def make_backend(
    root: Path,
    wheel: Path,
    blobs: Blobs,
    owner: str | None = None,
    engine: ContainerEngine | None = None,
    unix: bool = True,
    base: str = BASE,
) -> ContainerBackend:
    """A backend as ``funade up`` makes it: replicas on Unix sockets (``unix``), else on TCP;
    ``owner``: a new one unless given (another backend instance over the same replicas)."""
    return ContainerBackend(
        engine or ContainerEngine.find("podman"),
        root,
        owner=owner or uuid.uuid4().hex[:12],
        fetch=blobs.open,
        funade_version=funade.__version__,
        base_image=base,
        funade_wheel=wheel,
        api_url=lambda: "http://127.0.0.1:8470",
        sockets=socket_base(Path("/tmp"), root) if unix else None,
    )


def dispose(backend: ContainerBackend) -> None:
    """Stop the backend's replicas and let it go; fail if a container of its owner is left
    (removing it)."""
    backend.stop_all(grace_seconds=2)
    backend.close()
    if backend.sockets is not None:
        shutil.rmtree(backend.sockets.base, ignore_errors=True)  # under /tmp
    left = podman("ps", "-aq", f"--filter=label={LABEL}.owner={backend.owner}").stdout.split()
    if left:
        podman("rm", "--force", *left, check=False)
    assert left == [], "stop_all left containers"


@pytest.fixture
def backend(
    podman_ready: None,
    tmp_path: Path,
    wheel: Path,
    blobs: Blobs,
) -> Iterator[ContainerBackend]:
    backend = make_backend(tmp_path / "containers", wheel, blobs)
    yield backend
    dispose(backend)


def crashed(reconciler: Reconciler, desired: dict[Any, Desired], key: Any, what: str) -> str:
    """Step ``reconciler`` until ``key``'s replica failed twice in a row (``what``, for the
    timeout's message); the last failure's detail."""
    until(
        lambda: (
            reconciler.step(desired) is not None
            and key in reconciler.backoff
            and reconciler.backoff[key].failures >= 2
        ),
        180,
        what,
    )
    return reconciler.backoff[key].last_detail


def ready(backend: ContainerBackend, count: int = 1) -> list[Any]:
    replicas: list[Any] = []

    def check() -> bool:
        replicas[:] = backend.replicas()
        return len(replicas) == count and all(r.state is ReplicaState.READY for r in replicas)

    until(check, 180, f"{count} ready replicas: {replicas}")
    return replicas


def test_a_replica_serves_on_its_socket_with_its_token_and_refuses_any_other(
    backend: ContainerBackend, source: str
) -> None:
    started = backend.start(spec_of(source, runtime=RuntimeConfig(max_batch_size=3)))
    assert started.state is ReplicaState.STARTING
    assert started.token
    [replica] = ready(backend)
    assert replica.id == started.id
    assert replica.token == started.token
    assert backend.sockets is not None
    path = backend.sockets.socket(replica.id)
    assert replica.url == f"unix:{path}"
    assert np.allclose(predict(replica.url, replica.token), [2.0, 4.0])
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert oct(path.parent.stat().st_mode & 0o777) == oct(0o700)
    assert path.parent.stat().st_uid == 10001, "the image's user, who alone writes there"
    assert oct(backend.sockets.base.stat().st_mode & 0o777) == oct(0o700)

    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
    with ReplicaHTTP(30) as http:
        infer = f"/v2/models/{CHURN}/infer"
        assert http.post(replica.url, infer, json=body).status_code == 401
        wrong = http.post(
            replica.url, infer, json=body, headers={"authorization": "Bearer not-the-token"}
        )
        assert wrong.status_code == 401
        assert http.get(replica.url, f"/v2/models/{CHURN}").status_code == 401
        assert http.get(replica.url, "/v2/health/ready").status_code == 200  # a probe: open

    name = f"funade-{replica.id}"
    inspected = podman("inspect", "--format", "{{json .HostConfig.PortBindings}}", name).stdout
    assert "HostPort" not in inspected, "no port published"
    mounts = podman("inspect", "--format", "{{json .Mounts}}", name).stdout
    assert f'"Destination":"{SOCKET_MOUNT}"' in mounts.replace(" ", "")
    args = podman("inspect", "--format", "{{json .Args}}", name).stdout
    assert '"--max-batch-size","3"' in args.replace(" ", "")
    assert replica.token not in args
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"


def test_an_image_without_the_socket_label_is_served_on_a_port(
    backend: ContainerBackend, source: str
) -> None:
    """An image of an older funade (its `funade serve` knows no --uds) gets a published port."""
    assert backend._serves_unix(default_tag(CHURN, 1, source))
    assert not backend._serves_unix(BASE), "the base image has no funade label"
    assert not backend._serves_unix("localhost/no-such-image:1")


def test_a_new_backend_adopts_replicas_and_a_killed_one_is_replaced(
    backend: ContainerBackend,
    source: str,
    wheel: Path,
    blobs: Blobs,
) -> None:
    spec = spec_of(source)
    desired = {spec.key: Desired(spec, 2)}
    reconciler = Reconciler(backend, grace_seconds=2)
    first = converge(reconciler, desired, 2)
    tokens = {r.id: r.token for r in backend.replicas()}
    urls = {r.id: r.url for r in backend.replicas()}
    assert all(r.url.startswith("unix:/tmp/funade-") for r in backend.replicas())

    adopted = make_backend(backend.root, wheel, blobs, backend.owner)
    try:
        again = Reconciler(adopted, grace_seconds=2)
        assert converge(again, desired, 2) == first
        assert not any("started" in event for event in again.events)
        assert {r.id: r.token for r in adopted.replicas()} == tokens
        assert {r.id: r.url for r in adopted.replicas()} == urls, "the sockets read back"
        for replica in adopted.replicas():
            assert np.allclose(predict(replica.url, replica.token), [2.0, 4.0])

        podman("kill", "--signal=KILL", f"funade-{first[0]}")
        until(
            lambda: any(
                r.id == first[0] and r.state is ReplicaState.EXITED for r in adopted.replicas()
            ),
            30,
            "the killed replica seen as exited",
        )
        [gone] = [r for r in adopted.replicas() if r.id == first[0]]
        assert gone.detail.startswith("exited with status 137"), gone.detail
        after = converge(again, desired, 2)
        assert first[1] in after
        assert first[0] not in after
        assert any(f"{first[0]} exited with status 137" in e for e in again.events), again.events
    finally:
        adopted.close()


def test_a_model_that_crashes_exits_with_its_status_and_last_log_lines(
    backend: ContainerBackend, tmp_path: Path, blobs: Blobs
) -> None:
    digest = blobs.add(package(CrashOnLoad(), tmp_path / "crash", SAMPLE))
    spec = spec_of(digest, deployment="crash", runtime=RuntimeConfig(env={"FAKE_MODEL_CRASH": "1"}))
    desired = {spec.key: Desired(spec, 1)}
    reconciler = Reconciler(backend, grace_seconds=1)
    detail = crashed(reconciler, desired, spec.key, "two crashes")
    assert detail.startswith("exited with status 2: "), detail
    assert "FAKE_MODEL_CRASH is set" in detail, detail


def test_stop_drains_a_request_in_flight_then_removes_the_container(
    backend: ContainerBackend, tmp_path: Path, blobs: Blobs
) -> None:
    digest = blobs.add(package(Paced(), tmp_path / "paced", SAMPLE))
    backend.start(spec_of(digest, deployment="paced"))
    [replica] = ready(backend)
    answers: list[int] = []
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [3, 0]}]}

    def slow_request() -> None:  # the model takes 3 s over it
        with ReplicaHTTP(30) as http:
            answer = http.post(
                replica.url,
                "/v2/models/paced/infer",
                json=body,
                headers={"authorization": f"Bearer {replica.token}"},
            )
        answers.append(answer.status_code)

    request = threading.Thread(target=slow_request)
    request.start()
    time.sleep(1)  # the request is in the model by now
    backend.stop(replica.id, grace_seconds=20)
    assert backend.replicas() == [], "a stopping replica is no longer listed"
    request.join(30)
    assert answers == [200], "the request in flight was answered"
    name = f"funade-{replica.id}"
    until(
        lambda: podman("container", "exists", name, check=False).returncode == 1,
        30,
        "the container removed",
    )
    assert backend.sockets is not None
    until(lambda: not backend.sockets.directory(replica.id).exists(), 10, "its socket dir gone")


def test_an_image_is_built_once_per_digest(
    podman_ready: None,
    tmp_path: Path,
    wheel: Path,
    blobs: Blobs,
) -> None:
    """A model no other test uses, so its image can be removed first: the first start builds
    it (in the background: the replica is STARTING, "building image TAG", meanwhile), a second
    (of another backend instance, after the first is stopped) reuses it at once."""
    digest = blobs.add(package(CrashOnLoad(), tmp_path / "cached", SAMPLE))
    spec = spec_of(digest, deployment="cached")
    tag = default_tag("cached", 1, digest)
    remove_image(tag, force=True)
    log = tmp_path / "containers" / "builds" / f"{digest.removeprefix('sha256:')[:12]}.log"
    owner = uuid.uuid4().hex[:12]
    first = make_backend(tmp_path / "containers", wheel, blobs, owner)
    second = make_backend(tmp_path / "containers", wheel, blobs, owner)
    try:
        started = first.start(spec)
        assert (started.state, started.detail) == (ReplicaState.STARTING, f"building image {tag}")
        ready(first)
        assert image_digest(first.engine, tag) == digest
        built = log.read_text()
        assert built.count("$ ") == 1, built
        assert " build " in built
        first.stop_all(grace_seconds=2)

        again = second.start(spec)
        assert (again.state, again.detail) == (ReplicaState.STARTING, ""), "run at once"
        assert log.read_text() == built, "the second start built the image again"
        [replica] = ready(second)
        assert np.allclose(predict(replica.url, replica.token, "cached"), [2.0, 4.0])
    finally:
        first.close()
        second.stop_all(grace_seconds=2)
        second.close()
        remove_image(tag, force=True)


def test_a_package_that_cannot_be_fetched_makes_a_replica_that_exited(
    backend: ContainerBackend,
) -> None:
    replica = backend.start(spec_of("sha256:" + "0" * 64, deployment="gone"))
    assert replica.state is ReplicaState.STARTING  # its image is to be built: in the background
    until(
        lambda: [r.state for r in backend.replicas()] == [ReplicaState.EXITED],
        30,
        "the failed build seen",
    )
    [seen] = backend.replicas()
    assert seen.id == replica.id
    assert seen.detail.startswith("no image: "), seen.detail
    backend.stop(seen.id)
    assert backend.replicas() == []


def test_a_replica_reaches_a_control_plane_listening_on_every_address(
    backend: ContainerBackend, source: str
) -> None:
    """A plane on 0.0.0.0 is given to a bridged replica as host.containers.internal, which it
    reaches (a stand-in server answers for the plane: only what the replica reaches matters)."""

    class Plane(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"the plane")

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Plane)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        backend.api_url = lambda: f"http://0.0.0.0:{port}"
        backend.start(spec_of(source))
        [replica] = ready(backend)
        name = f"funade-{replica.id}"
        env = podman("exec", name, "printenv", "FUNADE_URL").stdout.strip()
        assert env == f"http://host.containers.internal:{port}"
        fetch = "import os, urllib.request as u; print(u.urlopen(os.environ['FUNADE_URL']).read())"
        reached = podman("exec", name, "python", "-c", fetch, check=False)
        assert reached.stdout.strip() == "b'the plane'", reached.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_the_url_a_bridged_replica_gets_for_the_control_plane() -> None:
    assert bridged_url("http://0.0.0.0:8470", "podman") == "http://host.containers.internal:8470"
    assert bridged_url("http://[::]:8470", "podman") == "http://host.containers.internal:8470"
    # Loopback reaches nothing from the bridge; a routable address or name is given as it is.
    assert bridged_url("http://127.0.0.1:8470", "podman") == "http://127.0.0.1:8470"
    assert bridged_url("http://192.0.2.2:8470", "podman") == "http://192.0.2.2:8470"
    assert bridged_url("https://funade.example.com", "podman") == "https://funade.example.com"
    # Docker names the host only when a container is run with --add-host: left as it is.
    assert bridged_url("http://0.0.0.0:8470", "docker") == "http://0.0.0.0:8470"
    assert bridged_url("", "podman") == ""


def test_stopping_an_unknown_replica_is_a_no_op(backend: ContainerBackend) -> None:
    backend.stop("nobody-r1-000000", grace_seconds=1)
    until(lambda: not backend._stopping, 30, "the stop to finish")
    assert backend.replicas() == []


@pytest.mark.skipif(not SHIM.is_file(), reason="podman-docker is not installed (apt-get install)")
def test_the_docker_backend_runs_replicas_through_docker(
    podman_ready: None,
    tmp_path: Path,
    wheel: Path,
    blobs: Blobs,
    source: str,
) -> None:
    backend = make_backend(
        tmp_path / "containers",
        wheel,
        blobs,
        engine=ContainerEngine.find("docker", executable=str(SHIM)),
        unix=False,
    )
    try:
        assert backend.engine.name == "docker"
        backend.start(spec_of(source))
        [replica] = ready(backend)
        assert replica.url.startswith("http://127.0.0.1:"), "with TCP, a published port"
        assert np.allclose(predict(replica.url, replica.token), [2.0, 4.0])
    finally:
        backend.stop_all(grace_seconds=2)
        backend.close()
    assert backend.replicas() == []


def test_a_missing_engine_is_refused_naming_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InvalidInputError) as info:
        ContainerEngine.find("podman")
    assert info.value.field == "backend"
    assert info.value.value == "podman"
    assert info.value.message == (
        "The podman backend runs replicas with `podman`, and there is no 'podman' on PATH."
    )
    assert "sudo apt-get install podman" in (info.value.fix or "")

    settings = Settings(home=tmp_path / "home", backend="docker")
    with pytest.raises(InvalidInputError) as info:
        create_backend(settings, None)  # type: ignore[arg-type]  # refused before it is read
    assert "there is no 'docker' on PATH" in info.value.message
    assert "docker.io" in (info.value.fix or "")

    with pytest.raises(InvalidInputError) as info:
        ContainerEngine.find("docker", executable=str(tmp_path / "nowhere" / "docker"))
    assert info.value.message.endswith(
        f"there is no {str(tmp_path / 'nowhere' / 'docker')!r} to run."
    )


def test_an_engine_that_is_not_podman_or_docker_is_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        ContainerEngine.find("lxc")
    assert info.value.message == "'lxc' is not a container engine funade drives."
    assert info.value.fix == "Use one of: podman, docker."


def test_backends_over_one_home_share_an_owner_and_others_do_not(tmp_path: Path) -> None:
    assert owner_of(tmp_path / "a") == owner_of(tmp_path / "b" / ".." / "a")
    assert owner_of(tmp_path / "a") != owner_of(tmp_path / "b")
    assert len(owner_of(tmp_path)) == 12


def test_the_podman_setting_makes_a_container_backend_over_the_home(
    podman_ready: None,
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path / "home", backend="podman", container_base_image=BASE)
    context = BackendContext(
        sandbox=Sandbox.from_settings(settings),
        fetch=lambda digest: iter(()),
        api_url=lambda: "http://127.0.0.1:8470",
    )
    backend = make_backend_for(settings, context)
    try:
        assert isinstance(backend, ContainerBackend)
        assert backend.engine.name == "podman"
        assert backend.root == settings.home / "containers"
        assert backend.owner == owner_of(settings.home)
        assert backend.base_image == BASE
        assert backend.api_url() == "http://127.0.0.1:8470"
        assert backend.replicas() == []
    finally:
        backend.close()
