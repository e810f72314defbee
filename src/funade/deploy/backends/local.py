"""The local backend: each replica is a ``funade serve`` subprocess on a Unix socket of its own
(``funade.deploy.backends.sockets``; its URL ``unix:/path``), or, with ``replica_transport =
"tcp"``, on a free loopback port.

A replica runs as its project's own user when funade runs as root (``funade.sandbox``), with a
minimal environment, a private home and temp directory, and its model package unpacked for it
read-only (fetched and verified by digest here, so it needs no credential and no store of its
own), and answers only callers that present its token (the gateway and the controller).

What a replica is given, all of it (``_environment``): the allowlisted variables of
``funade.sandbox.env``, its private ``HOME`` and ``TMPDIR``, its project (``FUNADE_PROJECT``),
the control plane's API URL (``FUNADE_URL``, once the server is bound), the version's digest
(``FUNADE_MODEL_DIGEST``), its token (``FUNADE_REPLICA_TOKEN``) and the ``cpu_scheduling``
setting (``FUNADE_CPU_SCHEDULING``). The token is made here for
this one replica and is a credential *to* the replica, not to the control plane: it opens
nothing there, and it is revoked when the replica stops (its record, the only other copy, is
deleted, and the gateway stops presenting it). Never the database URL, the artifact store's
credentials, an API key or any other variable of the control plane's environment.

Every replica leaves a record in the backend's directory (``<id>.json``: its spec, pid, token
and the process's start time), its log (``<id>.log``) and, once its socket is bound, its URL
(in its private directory). The records are what lets a restarted control plane adopt the
replicas that still run: a pid is trusted only if the process with it started at the recorded
time, so a reused pid is never mistaken for a replica. Replicas run in sessions of their own, so
a control plane that dies (even by ``kill -9``) does not take them down, and a stop signals the
whole process group (the server and its workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from funade.deploy.backends.base import Replica, ReplicaSpec, ReplicaState
from funade.deploy.backends.health import Health, probe
from funade.deploy.backends.sockets import SocketDirs, socket_base
from funade.deploy.replicaurl import ReplicaHTTP
from funade.fileutil import write_atomically
from funade.sandbox.env import forbidden_names, minimal_env
from funade.sandbox.layout import Sandbox

if TYPE_CHECKING:
    from funade.deploy.backends import BackendContext
    from funade.settings import Settings


@dataclass
class _Record:
    id: str
    spec: ReplicaSpec
    pid: int
    start_ticks: int
    started_at: float
    stopping_until: float | None = None
    token: str = ""
    url_file: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "spec": self.spec.model_dump(mode="json"),
                "pid": self.pid,
                "start_ticks": self.start_ticks,
                "started_at": self.started_at,
                "stopping_until": self.stopping_until,
                "token": self.token,
                "url_file": self.url_file,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> _Record:
        data = json.loads(text)
        return cls(
            id=str(data["id"]),
            spec=ReplicaSpec.model_validate(data["spec"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            started_at=float(data["started_at"]),
            stopping_until=data.get("stopping_until"),
            token=str(data.get("token") or ""),
            url_file=str(data.get("url_file") or ""),
        )


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # a zombie has exited; only its parent has yet to reap it
        return None
    return int(fields[19])


class LocalBackend:
    """Replicas as supervised subprocesses of this machine; see the module's docstring."""

    def __init__(
        self,
        root: Path,
        *,
        sandbox: Sandbox,
        fetch: Callable[[str], Iterable[bytes]],
        host: str = "127.0.0.1",
        python: str = sys.executable,
        health_timeout: float = 2.0,
        api_url: Callable[[], str] = lambda: "",
        sockets: Path | None = None,
        cpu_scheduling: str = "batch",
    ) -> None:
        """``root``: the records (private to funade's user); ``sandbox``: where and as whom
        replicas run; ``fetch``: an artifact's bytes by digest (the artifact store's);
        ``api_url``: the control plane's URL as replicas reach it (empty: not known yet);
        ``sockets``: the directory of the replicas' Unix sockets (``sockets.socket_base``), or
        None to serve them on loopback TCP (on ``host``); ``cpu_scheduling``: the setting,
        passed on to every replica."""
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.sandbox = sandbox
        self.fetch = fetch
        self.cpu_scheduling = cpu_scheduling
        self.host = host
        self.python = python
        self.api_url = api_url
        self.sockets = SocketDirs(sockets, shared=sandbox.users) if sockets is not None else None
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._health: dict[str, Health] = {}
        self._lock = threading.Lock()
        self._http = ReplicaHTTP(health_timeout)
        for record in self._records():  # finish stops a previous control plane began
            if record.stopping_until is not None:
                self._finish_stop_later(record)

    # The interface --------------------------------------------------------------------------

    def start(self, spec: ReplicaSpec) -> Replica:
        replica_id = f"{_slug(spec.deployment)}-r{spec.revision}-{secrets.token_hex(3)}"
        token = secrets.token_urlsafe(32)
        log_path = self._path(replica_id, "log")
        try:
            package = self.sandbox.package(spec.project_id, spec.digest, self.fetch)
            private = self.sandbox.private_dir(spec.project_id, replica_id)
        except Exception as exc:  # the package cannot be had: the replica fails to start
            with open(log_path, "ab") as log:
                log.write(f"the model package could not be prepared: {exc}\n".encode())
            record = _Record(replica_id, spec, 0, 0, time.time(), token=token)
            write_atomically(self._path(replica_id, "json"), record.to_json(), mode=0o600)
            return Replica(replica_id, spec, "", ReplicaState.EXITED, record.started_at)
        url_file = private / "url"
        who = self.sandbox.run_as(spec.project_id)
        if self.sockets is not None:
            owner = (who.uid, who.gid) if who is not None else None
            listen = ["--uds", str(self.sockets.make(replica_id, owner))]
        else:
            listen = ["--host", self.host, "--port", "0"]
        command = [
            self.python,
            "-m",
            "funade",
            "serve",
            str(package),
            *listen,
            "--name",
            spec.deployment,
            "--model-version",
            spec.version,
            *spec.runtime.serve_arguments(),
            "--url-file",
            str(url_file),
        ]
        env = self._environment(spec, private, token)
        with open(log_path, "ab") as log:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=private,
                start_new_session=True,  # survives the control plane; stopped as a group
                **(who.popen() if who is not None else {}),
            )
        ticks = process_start_ticks(child.pid) or 0
        record = _Record(
            replica_id, spec, child.pid, ticks, time.time(), token=token, url_file=str(url_file)
        )
        with self._lock:
            self._children[child.pid] = child
        write_atomically(self._path(replica_id, "json"), record.to_json(), mode=0o600)
        return Replica(replica_id, spec, "", ReplicaState.STARTING, record.started_at, token=token)

    def replicas(self) -> list[Replica]:
        out = []
        for record in self._records():
            if record.stopping_until is None:
                out.append(self._observe(record))
        return out

    def stop(self, replica_id: str, *, grace_seconds: float = 30.0) -> None:
        """Signal the replica to drain (SIGTERM), and return; a thread kills it after the grace
        time if it has not exited by then, and forgets it once it has."""
        record = self._record(replica_id)
        if record is None:
            return
        record.stopping_until = time.time() + grace_seconds
        write_atomically(self._path(replica_id, "json"), record.to_json(), mode=0o600)
        if self._alive(record):
            _signal_group(record.pid, signal.SIGTERM)
        self._finish_stop_later(record)

    def stop_all(self, *, grace_seconds: float = 30.0) -> None:
        """Stop every replica (each drains first) and wait until all are gone, up to
        ``grace_seconds`` and the few seconds a kill takes after it."""
        for replica in self.replicas():
            self.stop(replica.id, grace_seconds=grace_seconds)
        deadline = time.monotonic() + grace_seconds + 5
        while list(self.root.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.sockets is not None:
            self.sockets.remove_base()

    def close(self) -> None:
        """Let go of what this object holds (its HTTP client); the replicas keep running."""
        self._http.close()

    # Helpers --------------------------------------------------------------------------------

    def _environment(self, spec: ReplicaSpec, private: Path, token: str) -> dict[str, str]:
        """A replica's whole environment; see the module's docstring."""
        runtime = spec.runtime
        refused = set(forbidden_names(runtime.env))  # a revision from an earlier version
        api_url = self.api_url()
        return minimal_env(
            {
                **{k: v for k, v in runtime.env.items() if k not in refused},
                "HOME": str(private / "home"),
                "TMPDIR": str(private / "tmp"),
                # One line per message in the log (the CLI wraps to COLUMNS), read back as
                # exit details.
                "PYTHONUNBUFFERED": "1",
                "COLUMNS": "1000",
                "FUNADE_PROJECT": spec.project,
                **({"FUNADE_URL": api_url} if api_url else {}),
                "FUNADE_MODEL_DIGEST": spec.digest,
                "FUNADE_REPLICA_TOKEN": token,
                "FUNADE_CPU_SCHEDULING": self.cpu_scheduling,
            }
        )

    def log_path(self, replica_id: str) -> Path:
        return self._path(replica_id, "log")

    def _path(self, replica_id: str, suffix: str) -> Path:
        return self.root / f"{replica_id}.{suffix}"

    def _records(self) -> list[_Record]:
        records = []
        for path in sorted(self.root.glob("*.json")):
            try:
                records.append(_Record.from_json(path.read_text()))
            except (OSError, ValueError, KeyError):
                continue  # a record being replaced, or not ours
        return records

    def _record(self, replica_id: str) -> _Record | None:
        try:
            return _Record.from_json(self._path(replica_id, "json").read_text())
        except (OSError, ValueError, KeyError):
            return None

    def _alive(self, record: _Record) -> bool:
        with self._lock:
            child = self._children.get(record.pid)
        if child is not None and child.poll() is not None:
            return False
        ticks = process_start_ticks(record.pid)
        return ticks is not None and (record.start_ticks == 0 or ticks == record.start_ticks)

    def _observe(self, record: _Record) -> Replica:
        url = _read(Path(record.url_file)) if record.url_file else ""
        health = self._health.setdefault(record.id, Health())

        def replica(state: ReplicaState, detail: str = "") -> Replica:
            return Replica(
                record.id, record.spec, url, state, record.started_at, detail, record.token
            )

        if not self._alive(record):
            return replica(ReplicaState.EXITED, self._exit_detail(record))
        if not url:
            return replica(ReplicaState.STARTING)
        return replica(*probe(self._http, url, record.token, health))

    def _exit_detail(self, record: _Record) -> str:
        with self._lock:
            child = self._children.get(record.pid)
        code = None
        if child is not None:  # it has exited (or is a zombie): reap it for its status
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = child.wait(timeout=1)
        lines = [line for line in _tail(self._path(record.id, "log")).splitlines() if line.strip()]
        said = lines[-1].strip() if lines else ""
        status = f"exited with status {code}" if code is not None else "no longer running"
        return f"{status}: {said}" if said else status

    def _finish_stop_later(self, record: _Record) -> None:
        threading.Thread(
            target=self._finish_stop, args=(record,), name=f"stop-{record.id}", daemon=True
        ).start()

    def _finish_stop(self, record: _Record) -> None:
        deadline = record.stopping_until or time.time()
        while self._alive(record) and time.time() < deadline:
            time.sleep(0.05)
        if self._alive(record):
            _signal_group(record.pid, signal.SIGKILL)
            while self._alive(record) and time.time() < deadline + 5:
                time.sleep(0.05)
        with self._lock:
            child = self._children.pop(record.pid, None)
        if child is not None:
            child.wait()
        self._health.pop(record.id, None)
        if self.sockets is not None:  # before its record: stop_all waits for the records
            self.sockets.remove(record.id)
        for suffix in ("json", "url", "log"):
            self._path(record.id, suffix).unlink(missing_ok=True)
        self.sandbox.remove_private(record.spec.project_id, record.id)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    if pid <= 0:  # a replica that never started
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the replica leads its own session and process group


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - size))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]


def create_backend(settings: Settings, context: BackendContext) -> LocalBackend:
    """The local backend over ``$FUNADE_HOME/replicas`` (``funade.deploy.backends.make_backend``
    calls this for ``backend = "local"``), its replicas on Unix sockets under ``$TMPDIR`` unless
    ``replica_transport`` is ``tcp``."""
    import tempfile

    unix = settings.replica_transport == "unix"
    return LocalBackend(
        settings.home / "replicas",
        sandbox=context.sandbox,
        fetch=context.fetch,
        api_url=context.api_url,
        sockets=socket_base(Path(tempfile.gettempdir()), settings.home) if unix else None,
        cpu_scheduling=settings.cpu_scheduling,
    )
