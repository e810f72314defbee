"""The container backend (``backend = "podman"`` or ``"docker"``): each replica is a container
of its model version's image, run by the engine's command line (``funade.images.engine``).

**The image** is the one `funade build` makes for the version (``funade.images.ondemand``):
built from the artifact store's package the first time a replica of that digest starts, tagged
``funade/<model>:<version>-<12 hex>`` and reused by every later start (an image already tagged
for the digest is never built again, unless another funade made it: ``funade.images.provenance``,
its version and wheel in labels). ``container_base_image`` and ``container_funade_wheel``
(settings) are `funade build`'s ``--base`` and ``--funade-wheel``. The build runs in the
background (``funade.images.background``: one build per tag at a time, at most two at once), not
on the controller's thread: ``start`` of a replica whose image is not built yet answers it
STARTING with the detail ``building image TAG``, and ``replicas`` runs its container once the
image is there (seconds with the builder's cache warm, a minute or so when the frameworks are
installed from the index), or reports it EXITED with the build's error (``no image: ...``, the
builder's last lines), which the reconciler counts as a crash. Later starts find the image.

**The socket.** A replica's server listens on a Unix socket (``funade serve --uds``) in a
directory of the host mounted into the container (``SOCKET_MOUNT``): one directory per replica
(``funade.deploy.backends.sockets``: under ``$TMPDIR/funade-<hash of home>``, mode 0700), owned
by the image's user (uid 10001: the container drops every capability, so only that uid may
write there); the socket is 0600. The gateway and the controller (root) reach it at
``unix:<host directory>/r.sock``; no port is published, and the hop skips the bridge and its NAT
(benchmarks/containers). This needs funade to run as root (rootful podman or docker); otherwise,
with ``replica_transport = "tcp"``, or for an image built by a funade that knew no ``--uds``
(no ``dev.funade.serve-uds`` label), the replica listens on TCP as below.

**The network.** Without a socket, a replica's server listens on port 8080 inside the
container, in the engine's default (bridge) network, published on the host's loopback only:
``--publish 127.0.0.1::8080``, a free port the engine picks and reports (``inspect``), so the
gateway and the controller reach it at ``http://127.0.0.1:<port>`` and nothing off the machine
does. Either way the container keeps the bridge network for its own outbound calls. Host networking
(``--network host`` with the server bound to 127.0.0.1) was the other way; it is not used
because the container would then share the host's loopback, where the control plane, the
gateway, other replicas and a trust-authenticated PostgreSQL listen: a model would reach them
all. In its own network namespace it reaches none of them (on this machine's rootful podman,
CNI's bridge with port forwarding worked as it is; ``scripts/podman-setup``). The control
plane's URL is still given (``FUNADE_URL``), as the local backend gives it; from the bridge a
loopback URL does not reach the host (a control plane on another address does; one on every
address, ``0.0.0.0``, is given as ``host.containers.internal`` with podman: ``bridged_url``).

**What a replica is given**, all of it: its image's own environment (no secret is baked in;
docs/containers.md), ``FUNADE_PROJECT``, ``FUNADE_URL`` (once the server is bound),
``FUNADE_MODEL_DIGEST``, its token ``FUNADE_REPLICA_TOKEN``, ``FUNADE_CPU_SCHEDULING`` and the
revision's ``env``: the local backend's list, less ``HOME`` and ``TMPDIR`` (the image has its
own). Values go through
the engine's environment (``-e NAME`` with no value), never on a command line. Never the
database URL, the artifact store's credentials, an API key, or any other variable of the
control plane. The container runs as the image's user (uid 10001), with every capability
dropped and ``no-new-privileges``.

**Supervision and adoption.** Nothing is kept on disk: each container carries labels (given in
a file, ``--label-file``, as the spec may hold the revision's secrets) with its replica id,
deployment, revision, the whole spec, its start time and the backend's owner (a hash of
``FUNADE_HOME``, so two platforms on one machine, or two test workers, never see each other's
replicas). ``replicas`` lists them (``ps --all --filter label=dev.funade.replica.owner=...``)
and inspects each new one once (its token from its environment, its socket's mount or its
port); a restarted control
plane finds them the same way and adopts them. A running container is STARTING until its
``/v2/health/ready`` answers with its token, READY after, FAILED after three failed checks in a
row (``funade.deploy.backends.health``, the local backend's rule); a stopped one is EXITED with
its exit status and the last lines of its log. ``stop`` drains (``stop -t GRACE``: SIGTERM,
then SIGKILL after the grace time) and removes the container, in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from funade.deploy.backends.base import Replica, ReplicaSpec, ReplicaState
from funade.deploy.backends.health import Health, probe
from funade.deploy.backends.sockets import SOCKET_NAME, SocketDirs, socket_base
from funade.deploy.replicaurl import ReplicaHTTP, unix_url
from funade.images.background import ImageWaits, Waiting
from funade.images.containerfile import PORT, SERVES_UNIX_LABEL, UID, default_tag
from funade.images.engine import ContainerEngine
from funade.images.ondemand import ensure_image, image_is_current, image_labels
from funade.sandbox.env import forbidden_names

if TYPE_CHECKING:
    from funade.deploy.backends import BackendContext
    from funade.settings import Settings

__all__ = ["LABEL", "SOCKET_MOUNT", "ContainerBackend", "create_backend"]

SOCKET_MOUNT = "/run/funade"
"""Where a replica's socket directory is mounted in its container."""

LABEL = "dev.funade.replica"
"""The label every replica's container carries, its value the replica's id; the other labels
are ``LABEL`` + ``.owner``, ``.deployment``, ``.revision``, ``.spec`` and ``.started-at``."""
_OWNER = f"{LABEL}.owner"
# A container's state as `ps --format {{.State}}` says it, by its first word: docker's are
# one word (running, exited, ...), podman's a phrase ("up 3 seconds ago", "exited (1) ...").
_RUNNING = {"running", "up"}
_GONE = {"exited", "dead", "stopped"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOG_LINES = 3


@dataclass(frozen=True)
class _Seen:
    """What a container of ours is, read once from ``inspect`` (none of it changes)."""

    id: str
    spec: ReplicaSpec
    started_at: float
    token: str
    url: str


@dataclass(frozen=True)
class _Start:
    """A replica started while its image is built: what its container is run with after."""

    spec: ReplicaSpec
    token: str
    started_at: float


class ContainerBackend:
    """Replicas as containers run by podman or docker; see the module's docstring."""

    def __init__(
        self,
        engine: ContainerEngine,
        root: Path,
        *,
        owner: str,
        fetch: Callable[[str], Iterable[bytes]],
        funade_version: str,
        base_image: str | None = None,
        funade_wheel: Path | None = None,
        api_url: Callable[[], str] = lambda: "",
        health_timeout: float = 2.0,
        sockets: Path | None = None,
        cpu_scheduling: str = "batch",
    ) -> None:
        """``root``: build contexts and logs (private to funade's user); ``owner``: the value of
        the owner label, the same for every backend over one home; ``fetch``: a package's
        bytes by digest; ``api_url``: the control plane's URL (empty: not known yet);
        ``sockets``: the directory of replicas' socket directories (``sockets.socket_base``;
        funade must run as root), or None for TCP on a published port; ``cpu_scheduling``:
        the setting, passed on to every replica."""
        self.engine = engine
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.owner = owner
        self.fetch = fetch
        self.cpu_scheduling = cpu_scheduling
        self.funade_version = funade_version
        self.base_image = base_image
        self.funade_wheel = funade_wheel
        self.api_url = api_url
        self.sockets = SocketDirs(sockets, shared=False) if sockets is not None else None
        self._http = ReplicaHTTP(health_timeout)
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen | None] = {}  # container id -> ours (None: not readable)
        self._exits: dict[str, str] = {}  # container id -> why it exited
        self._health: dict[str, Health] = {}
        self._failed: dict[str, Replica] = {}  # replicas that never got a container
        self._stopping: dict[str, threading.Thread] = {}
        self._building = ImageWaits[_Start]()  # replicas waiting for their image, by id

    # The interface --------------------------------------------------------------------------

    def start(self, spec: ReplicaSpec) -> Replica:
        replica_id = f"{_slug(spec.deployment)}-r{spec.revision}-{secrets.token_hex(3)}"
        token = secrets.token_urlsafe(32)
        started_at = time.time()
        try:
            image = self._tag(spec)
            built = image_is_current(
                self.engine,
                image,
                spec.digest,
                funade_version=self.funade_version,
                funade_wheel=self.funade_wheel,
            )
        except Exception as exc:  # no image, no container: the start failed
            return self._failed_start(spec, replica_id, started_at, f"no image: {exc}")
        if not built:  # built in the background; `replicas` runs the container after
            start = _Start(spec, token, started_at)
            waiting = self._building.wait(replica_id, start, image, lambda: self._image(spec))
            return _waiting(replica_id, waiting)
        return self._run(spec, replica_id, token, started_at, image)

    def _run(
        self, spec: ReplicaSpec, replica_id: str, token: str, started_at: float, image: str
    ) -> Replica:
        """Run the container of a replica whose ``image`` is built."""
        env = self._environment(spec, token)
        labels = {
            LABEL: replica_id,
            _OWNER: self.owner,
            f"{LABEL}.deployment": spec.deployment,
            f"{LABEL}.revision": str(spec.revision),
            f"{LABEL}.spec": spec.model_dump_json(),
            f"{LABEL}.started-at": repr(started_at),
        }
        label_file = self.root / f"{replica_id}.labels"
        if self.sockets is not None and self._serves_unix(image):
            socket = self.sockets.make(replica_id, (UID, UID))
            listen = [f"--volume={socket.parent}:{SOCKET_MOUNT}:rw"]
            serve = ["--uds", f"{SOCKET_MOUNT}/{SOCKET_NAME}"]
        else:
            listen, serve = [f"--publish=127.0.0.1::{PORT}"], []
        args = [
            "run",
            "--detach",
            "--name",
            _name(replica_id),
            f"--label-file={label_file}",
            *listen,
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            # The backend checks readiness itself; the image's HEALTHCHECK would only make
            # podman set up a systemd timer for it (and complain where there is no systemd).
            "--no-healthcheck",
            *(f"--env={name}" for name in env),
            image,
            # After the image: the server's arguments, appended to the image's entrypoint
            # (`funade serve /models/... --host 0.0.0.0 --port 8080 ...`; the last value wins).
            "--name",
            spec.deployment,
            "--model-version",
            spec.version,
            *spec.runtime.serve_arguments(),
            *serve,
        ]
        # The labels hold the spec, whose env may hold secrets of the model's: from a file
        # only funade's user reads, not the command line.
        label_file.touch(mode=0o600)
        label_file.write_text("".join(f"{key}={value}\n" for key, value in labels.items()))
        try:
            done = self.engine.run(*args, env=env, timeout=120, check=False)
        finally:
            label_file.unlink(missing_ok=True)
        if done.returncode != 0:
            self.engine.run("rm", "--force", _name(replica_id), check=False)
            if self.sockets is not None:
                self.sockets.remove(replica_id)
            said = (done.stderr or done.stdout).strip()[-500:]
            detail = f"`{self.engine.name} run` failed (exit status {done.returncode}): {said}"
            return self._failed_start(spec, replica_id, started_at, detail)
        return Replica(replica_id, spec, "", ReplicaState.STARTING, started_at, token=token)

    def replicas(self) -> list[Replica]:
        waiting = self._building.settle(self._run_built, self._build_failed)
        out = list(self._failed.values()) + [_waiting(rid, w) for rid, w in waiting]
        listing = self._list()
        self._learn([cid for cid, _state in listing if cid not in self._seen])
        for cid, state in listing:
            seen = self._seen.get(cid)
            if seen is None or seen.id in self._stopping:
                continue
            out.append(self._observe(cid, state, seen))
        return out

    def stop(self, replica_id: str, *, grace_seconds: float = 30.0) -> None:
        """Drain and remove the replica's container in a thread (``stop -t``, then ``rm``)."""
        if self._failed.pop(replica_id, None) is not None:
            return
        if self._building.drop(replica_id):
            return  # no container yet, none later; its image is still built, for the next
        with self._lock:
            if replica_id in self._stopping:
                return
            thread = threading.Thread(
                target=self._finish_stop,
                args=(replica_id, grace_seconds),
                name=f"stop-{replica_id}",
                daemon=True,
            )
            self._stopping[replica_id] = thread
        thread.start()

    def stop_all(self, *, grace_seconds: float = 30.0) -> None:
        """Stop every replica (each drains first) and wait until all are gone."""
        for replica in self.replicas():
            self.stop(replica.id, grace_seconds=grace_seconds)
        deadline = time.monotonic() + grace_seconds + 30
        with self._lock:
            threads = list(self._stopping.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.sockets is not None:
            self.sockets.remove_base()

    def close(self) -> None:
        """Let go of the HTTP client; the containers keep running, to be adopted."""
        self._http.close()

    # Helpers --------------------------------------------------------------------------------

    def _tag(self, spec: ReplicaSpec) -> str:
        """The tag of the image of ``spec``'s version (``funade build``'s)."""
        model, _, version = spec.source.rpartition(":")
        return default_tag(model, int(version), spec.digest)

    def _run_built(self, replica_id: str, start: _Start, image: str) -> None:
        self._run(start.spec, replica_id, start.token, start.started_at, image)

    def _build_failed(self, replica_id: str, start: _Start, error: Exception) -> None:
        self._failed_start(start.spec, replica_id, start.started_at, f"no image: {error}")

    def _image(self, spec: ReplicaSpec) -> str:
        model, _, version = spec.source.rpartition(":")
        return ensure_image(
            self.engine,
            project=spec.project,
            model=model,
            version=int(version),
            digest=spec.digest,
            fetch=self.fetch,
            scratch=self.root / "builds",
            log=self.root / "builds" / f"{spec.digest.removeprefix('sha256:')[:12]}.log",
            funade_version=self.funade_version,
            base=self.base_image,
            funade_wheel=self.funade_wheel,
        )

    def _serves_unix(self, image: str) -> bool:
        """Whether the image's `funade serve` listens on a Unix socket (an image built by an
        older funade does not know ``--uds``: it gets a published port)."""
        return image_labels(self.engine, image).get(SERVES_UNIX_LABEL) == "true"

    def _environment(self, spec: ReplicaSpec, token: str) -> dict[str, str]:
        """A replica's environment beyond its image's; see the module's docstring."""
        refused = set(forbidden_names(spec.runtime.env))
        api_url = bridged_url(self.api_url(), self.engine.name)
        return {
            **{
                name: value
                for name, value in spec.runtime.env.items()
                if name not in refused and _ENV_NAME.fullmatch(name)
            },
            "COLUMNS": "1000",  # one line per message in the log, read back as exit details
            "FUNADE_PROJECT": spec.project,
            **({"FUNADE_URL": api_url} if api_url else {}),
            "FUNADE_MODEL_DIGEST": spec.digest,
            "FUNADE_REPLICA_TOKEN": token,
            "FUNADE_CPU_SCHEDULING": self.cpu_scheduling,
        }

    def _failed_start(
        self, spec: ReplicaSpec, replica_id: str, started_at: float, detail: str
    ) -> Replica:
        replica = Replica(replica_id, spec, "", ReplicaState.EXITED, started_at, detail)
        self._failed[replica_id] = replica
        return replica

    def _list(self) -> list[tuple[str, str]]:
        """``(container id, state)`` of every container of this owner."""
        done = self.engine.run(
            "ps",
            "--all",
            "--no-trunc",
            f"--filter=label={_OWNER}={self.owner}",
            "--format={{.ID}} {{.State}}",
        )
        rows = []
        for line in done.stdout.splitlines():
            cid, _, state = line.strip().partition(" ")
            if cid:
                rows.append((cid, (state.split() or [""])[0].lower()))
        return rows

    def _learn(self, ids: list[str]) -> None:
        """Inspect containers seen for the first time, and remember what they are."""
        if not ids:
            return
        done = self.engine.run("inspect", *ids, check=False)
        try:
            found = json.loads(done.stdout or "[]")
        except ValueError:
            found = []
        for item in found if isinstance(found, list) else []:
            cid = str(item.get("Id", ""))
            self._seen[cid] = _read(item)

    def _observe(self, cid: str, state: str, seen: _Seen) -> Replica:
        def replica(state: ReplicaState, detail: str = "") -> Replica:
            return Replica(seen.id, seen.spec, seen.url, state, seen.started_at, detail, seen.token)

        if state in _GONE:
            if cid not in self._exits:
                self._exits[cid] = self._exit_detail(cid)
            return replica(ReplicaState.EXITED, self._exits[cid])
        if state not in _RUNNING or not seen.url:
            return replica(ReplicaState.STARTING)
        health = self._health.setdefault(seen.id, Health())
        return replica(*probe(self._http, seen.url, seen.token, health))

    def _exit_detail(self, cid: str) -> str:
        done = self.engine.run("inspect", "--format={{.State.ExitCode}}", cid, check=False)
        code = done.stdout.strip()
        logs = self.engine.run("logs", "--tail=20", cid, check=False)
        lines = [line.strip() for line in (logs.stdout + logs.stderr).splitlines() if line.strip()]
        status = f"exited with status {code}" if code else "no longer running"
        said = " | ".join(lines[-_LOG_LINES:])
        return f"{status}: {said}" if said else status

    def _finish_stop(self, replica_id: str, grace_seconds: float) -> None:
        name = _name(replica_id)
        try:
            if grace_seconds > 0:
                seconds = math.ceil(grace_seconds)
                self.engine.run(
                    "stop", f"--time={seconds}", name, check=False, timeout=seconds + 60
                )
            self.engine.run("rm", "--force", name, check=False, timeout=60)
        finally:
            if self.sockets is not None:
                self.sockets.remove(replica_id)
            with self._lock:
                self._stopping.pop(replica_id, None)
            self._health.pop(replica_id, None)
            for cid, seen in list(self._seen.items()):
                if seen is not None and seen.id == replica_id:
                    self._seen.pop(cid, None)
                    self._exits.pop(cid, None)


def _read(item: dict[str, Any]) -> _Seen | None:
    """A replica from a container's ``inspect``, or None when it is not one of ours."""
    config = item.get("Config") or {}
    labels = config.get("Labels") or {}
    try:
        spec = ReplicaSpec.model_validate_json(labels[f"{LABEL}.spec"])
        started_at = float(labels[f"{LABEL}.started-at"])
        replica_id = str(labels[LABEL])
    except (KeyError, ValueError, TypeError):
        return None
    env = dict(str(entry).partition("=")[::2] for entry in config.get("Env") or [])
    mounts = [m for m in item.get("Mounts") or [] if m.get("Destination") == SOCKET_MOUNT]
    ports = ((item.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{PORT}/tcp") or []
    host_port = next((str(p.get("HostPort")) for p in ports if p.get("HostPort")), "")
    if mounts and mounts[0].get("Source"):
        url = unix_url(f"{mounts[0]['Source']}/{SOCKET_NAME}")
    else:
        url = f"http://127.0.0.1:{host_port}" if host_port else ""
    return _Seen(replica_id, spec, started_at, env.get("FUNADE_REPLICA_TOKEN", ""), url)


def _waiting(replica_id: str, waiting: Waiting[_Start]) -> Replica:
    """A replica waiting for its image: STARTING, saying so."""
    start = waiting.item
    detail = f"building image {waiting.tag}"
    return Replica(
        replica_id, start.spec, "", ReplicaState.STARTING, start.started_at, detail, start.token
    )


def bridged_url(url: str, engine: str) -> str:
    """The control plane's ``url`` as a container on the engine's bridge reaches it: a plane
    listening on every address (``0.0.0.0``, ``::``) is reached at ``host.containers.internal``,
    the name podman (4.1 or later) gives the host's side of the bridge in each container's
    /etc/hosts; any other URL as it is. One on the host's loopback reaches nothing from the
    bridge (the container's loopback is its own), and docker gives no such name unless run with
    ``--add-host=host.docker.internal:host-gateway``: docs/containers.md."""
    parts = urlsplit(url)
    if engine != "podman" or parts.hostname not in ("0.0.0.0", "::"):  # noqa: S104
        return url
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"host.containers.internal{port}"))


def _name(replica_id: str) -> str:
    return f"funade-{replica_id}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)[:40]


def owner_of(home: Path) -> str:
    """The owner label of the backends over ``home``: 12 hex of the sha256 of its path."""
    with contextlib.suppress(OSError):
        home = home.resolve()
    return hashlib.sha256(str(home).encode()).hexdigest()[:12]


def create_backend(settings: Settings, context: BackendContext) -> ContainerBackend:
    """The container backend over ``settings.backend``'s engine (podman or docker) on ``PATH``
    (``funade.deploy.backends.make_backend`` calls this); replicas on Unix sockets under
    ``$TMPDIR`` when ``replica_transport`` is ``unix`` and funade runs as root."""
    import os
    import tempfile

    import funade

    unix = settings.replica_transport == "unix" and os.geteuid() == 0

    return ContainerBackend(
        ContainerEngine.find(settings.backend),
        settings.home / "containers",
        owner=owner_of(settings.home),
        fetch=context.fetch,
        funade_version=funade.__version__,
        base_image=settings.container_base_image,
        funade_wheel=settings.container_funade_wheel,
        api_url=context.api_url,
        sockets=socket_base(Path(tempfile.gettempdir()), settings.home) if unix else None,
        cpu_scheduling=settings.cpu_scheduling,
    )
