"""The Python client of the control-plane REST API (used by the SDK, the CLI and people)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from funade.api.schemas import (
    AliasOut,
    ArtifactRef,
    AuditOut,
    CacheEntryOut,
    CacheLookupOut,
    DeploymentOut,
    DeploymentStatsOut,
    KeyOut,
    LaunchIn,
    ModelOut,
    NewKeyOut,
    Page,
    ProjectOut,
    RolloutOut,
    RunAttemptIn,
    RunEventsIn,
    RunEventsOut,
    RunIn,
    RunOut,
    ScheduleIn,
    ScheduleOut,
    SchedulePatch,
    TrafficIn,
    VersionIn,
    VersionOut,
    WhoAmI,
)
from funade.artifacts.digest import sha256_file
from funade.client.responses import is_missing, raise_for_error
from funade.credentials import read_credentials
from funade.errors import ArtifactCorruptError, FunadeError
from funade.pipelines.schemas import RemoteScheduleIn, RemoteScheduleOut
from funade.running import RunningUp, find_up
from funade.settings import Settings, load_settings

Progress = Callable[[int, int], None]
UNIX_PREFIX = "unix:"
UNIX_BASE = "http://funade.local"
M = TypeVar("M", bound=BaseModel)
CHUNK = 1024 * 1024


class Client:
    """Talks to a control plane at ``url``; with no URL, to the `funade up` running over
    ``$FUNADE_HOME`` (``funade.running``), else to one it runs in-process over that home
    (``funade.client.local``).

    >>> client = funade.Client()            # local, or FUNADE_URL / FUNADE_API_KEY
    >>> client.get_version("churn", "production").version
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        project: str | None = None,
        *,
        settings: Settings | None = None,
        timeout: float = 60.0,
        wait_on_close: bool = True,
    ) -> None:
        """``wait_on_close=False``: :meth:`close` tells the in-process API (no ``url``) to stop
        and returns at once, for a process that ends next (the CLI)."""
        self.settings = settings if settings is not None else load_settings()
        self._wait_on_close = wait_on_close
        self.project = project or self.settings.project
        url = url or self.settings.url
        key = api_key or (
            self.settings.api_key.get_secret_value() if self.settings.api_key else None
        )
        self._local = None
        self._owns_local = True
        self.running_up: RunningUp | None = None
        """The `funade up` over this home that this client found and talks to (no URL given)."""
        if not url:
            self.running_up = find_up(self.settings.home)
            url = self.running_up.url if self.running_up else None
        if url and url.startswith(UNIX_PREFIX):
            # A control plane on a Unix socket: the in-process API of a runner, as its steps
            # reach it (``unix:/path/api.sock``).
            transport: httpx.BaseTransport | None = httpx.HTTPTransport(
                uds=url.removeprefix(UNIX_PREFIX)
            )
            base_url = UNIX_BASE
        elif url:
            transport = None
            base_url = url.rstrip("/")
            key = key or read_credentials(self.settings)
        else:
            from funade.client.local import LocalServer

            self._local = LocalServer(self.settings)
            self._local.start()
            transport = httpx.HTTPTransport(uds=str(self._local.socket_path))
            base_url = UNIX_BASE
            key = key or self._local.admin_key
        self.url = base_url
        self._transport = transport
        self._timeout = timeout
        self._http = self._make_http(key)

    @property
    def api_key(self) -> str | None:
        """The key this client authenticates with."""
        header = self._http.headers.get("authorization", "")
        return header.removeprefix("Bearer ") or None

    def _make_http(self, key: str | None) -> httpx.Client:
        headers = {"user-agent": "funade-python"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        return httpx.Client(
            base_url=self.url,
            headers=headers,
            transport=self._transport,
            timeout=httpx.Timeout(self._timeout, connect=10.0),
        )

    def with_key(self, key: str) -> Client:
        """A client of the same control plane (the in-process one included, which it shares
        and does not stop) that authenticates with ``key``, e.g. a run's token."""
        other = Client.__new__(Client)
        other.settings, other.project, other.url = self.settings, self.project, self.url
        other._local, other._owns_local = self._local, False
        other.running_up = self.running_up
        other._wait_on_close = self._wait_on_close
        other._transport, other._timeout = self._transport, self._timeout
        other._http = other._make_http(key)
        return other

    @property
    def address(self) -> str:
        """Where another process on this machine reaches this control plane: its URL, or
        ``unix:<socket>`` for the in-process one."""
        if self._local is not None:
            return UNIX_PREFIX + str(self._local.socket_path)
        if self.settings.url and self.settings.url.startswith(UNIX_PREFIX):
            return self.settings.url
        return self.url

    # Lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()
        if self._local is not None and self._owns_local:
            self._local.stop(wait=self._wait_on_close)
        self._local = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def is_local(self) -> bool:
        return self._local is not None

    # Plumbing -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise FunadeError(
                f"Could not reach the funade API at {self.url}: {exc}.",
                fix="Start it with `funade up`, or check FUNADE_URL.",
            ) from exc
        raise_for_error(response)
        return response

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        clean = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self._request("GET", path, params=clean).json())

    def _p(self, project: str | None) -> str:
        return f"/api/v1/projects/{project or self.project}"

    # Projects and identity ----------------------------------------------------------------

    def whoami(self) -> WhoAmI:
        return self._get("/api/v1/whoami", WhoAmI)

    def list_projects(self) -> list[ProjectOut]:
        rows = self._request("GET", "/api/v1/projects").json()
        return [ProjectOut.model_validate(r) for r in rows]

    def create_project(self, name: str, description: str = "") -> ProjectOut:
        body = {"name": name, "description": description}
        return ProjectOut.model_validate(
            self._request("POST", "/api/v1/projects", json=body).json()
        )

    def update_project(
        self, name: str, *, description: str | None = None, trust_code: bool | None = None
    ) -> ProjectOut:
        body = {
            k: v
            for k, v in {"description": description, "trust_code": trust_code}.items()
            if v is not None
        }
        return ProjectOut.model_validate(
            self._request("PATCH", f"/api/v1/projects/{name}", json=body).json()
        )

    # Models -------------------------------------------------------------------------------

    def list_models(
        self,
        *,
        query: str | None = None,
        archived: bool | None = False,
        cursor: str | None = None,
        limit: int = 50,
        project: str | None = None,
    ) -> Page[ModelOut]:
        params = {"q": query, "archived": archived, "cursor": cursor, "limit": limit}
        return self._get(f"{self._p(project)}/models", Page[ModelOut], **params)

    def get_model(self, name: str, *, project: str | None = None) -> ModelOut:
        return self._get(f"{self._p(project)}/models/{name}", ModelOut)

    def update_model(self, name: str, *, project: str | None = None, **changes: Any) -> ModelOut:
        body = {k: v for k, v in changes.items() if v is not None}
        response = self._request("PATCH", f"{self._p(project)}/models/{name}", json=body)
        return ModelOut.model_validate(response.json())

    def delete_model(self, name: str, *, project: str | None = None) -> None:
        self._request("DELETE", f"{self._p(project)}/models/{name}")

    # Versions -----------------------------------------------------------------------------

    def list_versions(
        self,
        model: str,
        *,
        tags: list[str] | None = None,
        metrics: list[str] | None = None,
        archived: bool | None = None,
        cursor: str | None = None,
        limit: int = 50,
        project: str | None = None,
    ) -> Page[VersionOut]:
        params = {
            "tag": tags,
            "metric": metrics,
            "archived": archived,
            "cursor": cursor,
            "limit": limit,
        }
        return self._get(f"{self._p(project)}/models/{model}/versions", Page[VersionOut], **params)

    def iter_versions(self, model: str, **filters: Any) -> Iterator[VersionOut]:
        cursor: str | None = None
        while True:
            page = self.list_versions(model, cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_version(
        self, model: str, ref: str | int = "latest", *, project: str | None = None
    ) -> VersionOut:
        """``ref``: a number, an alias, or ``latest``."""
        return self._get(f"{self._p(project)}/models/{model}/versions/{ref}", VersionOut)

    def create_version(
        self, model: str, body: VersionIn, *, project: str | None = None
    ) -> VersionOut:
        path = f"{self._p(project)}/models/{model}/versions"
        response = self._request("POST", path, json=body.model_dump(mode="json"))
        return VersionOut.model_validate(response.json())

    def update_version(
        self, model: str, version: int, *, project: str | None = None, **changes: Any
    ) -> VersionOut:
        body = {k: v for k, v in changes.items() if v is not None}
        path = f"{self._p(project)}/models/{model}/versions/{version}"
        return VersionOut.model_validate(self._request("PATCH", path, json=body).json())

    def delete_version(self, model: str, version: int, *, project: str | None = None) -> None:
        self._request("DELETE", f"{self._p(project)}/models/{model}/versions/{version}")

    # Aliases ------------------------------------------------------------------------------

    def set_alias(
        self, model: str, alias: str, version: int, *, project: str | None = None
    ) -> AliasOut:
        path = f"{self._p(project)}/models/{model}/aliases/{alias}"
        return AliasOut.model_validate(self._request("PUT", path, json={"version": version}).json())

    def delete_alias(self, model: str, alias: str, *, project: str | None = None) -> None:
        self._request("DELETE", f"{self._p(project)}/models/{model}/aliases/{alias}")

    def list_aliases(self, model: str, *, project: str | None = None) -> list[AliasOut]:
        rows = self._request("GET", f"{self._p(project)}/models/{model}/aliases").json()
        return [AliasOut.model_validate(r) for r in rows]

    # Artifacts ----------------------------------------------------------------------------

    def artifact_exists(self, digest: str, *, project: str | None = None) -> bool:
        """Whether the project holds ``digest``; an unknown project is an error, not False."""
        url = f"{self._p(project)}/artifacts/{digest}"
        response = self._http.head(url)
        if is_missing(response, "digest"):
            return False
        if response.status_code >= 400:  # a HEAD answer has no body to say why: ask again
            with self._http.stream("GET", url) as full:
                raise_for_error(full)
        return True

    def upload_artifact(
        self,
        path: Path,
        *,
        digest: str | None = None,
        progress: Progress | None = None,
        project: str | None = None,
    ) -> ArtifactRef:
        """Stream ``path`` to the artifact store (skipped if the project already has it)."""
        digest = digest or sha256_file(path)
        size = path.stat().st_size
        if self.artifact_exists(digest, project=project):
            if progress is not None:
                progress(size, size)
            return ArtifactRef(digest=digest, size=size)

        def chunks() -> Iterator[bytes]:
            done = 0
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    done += len(chunk)
                    yield chunk
                    if progress is not None:
                        progress(done, size)

        response = self._request(
            "PUT",
            f"{self._p(project)}/artifacts/{digest}",
            content=chunks(),
            headers={"content-length": str(size), "content-type": "application/octet-stream"},
        )
        return ArtifactRef.model_validate(response.json())

    def download_artifact(
        self,
        digest: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        project: str | None = None,
    ) -> Path:
        """Stream an artifact to ``dest``, verifying its digest; nothing is left on mismatch."""
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with (
                self._http.stream("GET", f"{self._p(project)}/artifacts/{digest}") as response,
                tmp.open("wb") as handle,
            ):
                raise_for_error(response)
                total = int(response.headers.get("content-length", 0))
                hasher = hashlib.sha256()
                done = 0
                for chunk in response.iter_bytes(CHUNK):
                    hasher.update(chunk)
                    handle.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            actual = f"sha256:{hasher.hexdigest()}"
            if actual != digest:
                raise ArtifactCorruptError(
                    f"Artifact {digest} arrived with digest {actual}.",
                    field="digest",
                    value=actual,
                    fix="Download it again; if this repeats, the stored copy is damaged.",
                )
            os.replace(tmp, dest)
        except httpx.HTTPError as exc:
            raise ArtifactCorruptError(
                f"The download of {digest} was cut off: {exc}.",
                field="digest",
                value=digest,
                fix="Download it again; if this repeats, the stored copy may be damaged.",
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def open_artifact(self, digest: str, *, project: str | None = None) -> Iterator[bytes]:
        """The artifact's bytes as a stream (the caller verifies, e.g. ArtifactCache does); a
        transfer cut off (the server breaks off a damaged blob's) is ArtifactCorruptError."""
        with self._http.stream("GET", f"{self._p(project)}/artifacts/{digest}") as response:
            raise_for_error(response)
            try:
                yield from response.iter_bytes(CHUNK)
            except httpx.HTTPError as exc:
                raise ArtifactCorruptError(
                    f"The download of {digest} was cut off: {exc}.",
                    field="digest",
                    value=digest,
                    fix="Download it again; if this repeats, the stored copy may be damaged.",
                ) from exc

    # Keys and audit -----------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        scopes: list[str],
        *,
        project: str | None = None,
        expires_at: datetime | None = None,
        deployment: str | None = None,
        kind: str = "key",
        allow_cidrs: list[str] | None = None,
    ) -> NewKeyOut:
        """A new key (its text is in ``.key``, shown once). ``kind="group"``: a try-it token
        for ``deployment`` with an expiry (``.try_url``, ``.qr_svg``); ``allow_cidrs``: the
        networks it may be used from."""
        body: dict[str, Any] = {
            "name": name,
            "scopes": scopes,
            "project": project,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "deployment": deployment,
        }
        if kind != "key":
            body["kind"] = kind
        if allow_cidrs:
            body["allow_cidrs"] = allow_cidrs
        return NewKeyOut.model_validate(self._request("POST", "/api/v1/keys", json=body).json())

    def list_keys(
        self, *, project: str | None = None, include_revoked: bool = False, kind: str | None = None
    ) -> list[KeyOut]:
        params: dict[str, Any] = {"include_revoked": include_revoked}
        if project:
            params["project"] = project
        if kind:
            params["kind"] = kind
        rows = self._request("GET", "/api/v1/keys", params=params).json()
        return [KeyOut.model_validate(r) for r in rows]

    def revoke_key(self, key_id: str) -> KeyOut:
        return KeyOut.model_validate(self._request("DELETE", f"/api/v1/keys/{key_id}").json())

    def audit(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[AuditOut]:
        params = {"project": project, "action": action, "cursor": cursor, "limit": limit}
        return self._get("/api/v1/audit", Page[AuditOut], **params)

    # Deployments --------------------------------------------------------------------------

    def create_deployment(self, model: str, **fields: Any) -> DeploymentOut:
        """``create_deployment("churn", version="3", replicas=2)``: see ``DeploymentIn``
        (the server checks the fields)."""
        body = {"model": model, **fields}
        body.setdefault("project", self.project)
        response = self._request("POST", "/api/v1/deployments", json=body)
        return DeploymentOut.model_validate(response.json())

    def list_deployments(self, *, project: str | None = None) -> list[DeploymentOut]:
        rows = self._request(
            "GET", "/api/v1/deployments", params={"project": project or self.project}
        ).json()
        return [DeploymentOut.model_validate(r) for r in rows]

    def get_deployment(self, name: str) -> DeploymentOut:
        return self._get(f"/api/v1/deployments/{name}", DeploymentOut)

    def update_deployment(self, name: str, **changes: Any) -> DeploymentOut:
        """A new ``version``/``replicas``/``runtime``/``smoke`` rolls out a new revision by
        ``rollout={"strategy": "canary", "steps": [10, 50, 100]}``; see ``DeploymentPatch``."""
        body = {k: v for k, v in changes.items() if v is not None}
        response = self._request("PATCH", f"/api/v1/deployments/{name}", json=body)
        return DeploymentOut.model_validate(response.json())

    def delete_deployment(self, name: str) -> DeploymentOut:
        response = self._request("DELETE", f"/api/v1/deployments/{name}")
        return DeploymentOut.model_validate(response.json())

    def set_traffic(
        self,
        name: str,
        weights: dict[int, int] | None = None,
        *,
        shadow: int | None = None,
        clear_shadow: bool = False,
    ) -> DeploymentOut:
        body = TrafficIn(weights=weights, shadow=shadow, clear_shadow=clear_shadow)
        response = self._request(
            "PUT", f"/api/v1/deployments/{name}/traffic", json=body.model_dump(mode="json")
        )
        return DeploymentOut.model_validate(response.json())

    def list_rollouts(self, name: str, *, limit: int = 20) -> list[RolloutOut]:
        rows = self._request(
            "GET", f"/api/v1/deployments/{name}/rollouts", params={"limit": limit}
        ).json()
        return [RolloutOut.model_validate(r) for r in rows]

    def rollout_action(self, name: str, action: str) -> RolloutOut:
        """``promote`` or ``abort`` the deployment's rollout in progress."""
        response = self._request("POST", f"/api/v1/deployments/{name}/rollout/{action}")
        return RolloutOut.model_validate(response.json())

    def deployment_stats(self, name: str, *, seconds: float = 300) -> DeploymentStatsOut:
        """Per-revision requests, errors and latency over the last ``seconds``."""
        return self._get(f"/api/v1/deployments/{name}/stats", DeploymentStatsOut, seconds=seconds)

    def rollback(self, name: str) -> RolloutOut:
        response = self._request("POST", f"/api/v1/deployments/{name}/rollback")
        return RolloutOut.model_validate(response.json())

    # Pipeline runs ------------------------------------------------------------------------

    def create_run(self, run: RunIn, *, project: str | None = None) -> RunOut:
        response = self._request(
            "POST", f"{self._p(project)}/runs", json=run.model_dump(mode="json")
        )
        return RunOut.model_validate(response.json())

    def list_runs(
        self,
        *,
        project: str | None = None,
        pipeline: str | None = None,
        state: str | None = None,
        schedule_id: int | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[RunOut]:
        return self._get(
            f"{self._p(project)}/runs",
            Page[RunOut],
            pipeline=pipeline,
            state=state,
            schedule_id=schedule_id,
            cursor=cursor,
            limit=limit,
        )

    def get_run(self, run_id: int, *, spec: bool = False) -> RunOut:
        return self._get(f"/api/v1/runs/{run_id}", RunOut, spec=spec or None)

    def report_run(self, run_id: int, events: RunEventsIn) -> RunEventsOut:
        """Report step records and run changes (with the run's own token): whether a cancel was
        requested, and the run once the report ended it."""
        response = self._request(
            "POST", f"/api/v1/runs/{run_id}/events", json=events.model_dump(mode="json")
        )
        return RunEventsOut.model_validate(response.json())

    def start_attempt(self, run_id: int, attempt: RunAttemptIn) -> RunOut:
        """Start the run's next attempt; the answer holds its new token."""
        response = self._request(
            "POST", f"/api/v1/runs/{run_id}/attempts", json=attempt.model_dump(mode="json")
        )
        return RunOut.model_validate(response.json())

    def cancel_run(self, run_id: int) -> RunOut:
        return RunOut.model_validate(self._request("POST", f"/api/v1/runs/{run_id}/cancel").json())

    def run_logs(self, run_id: int, *, step: str | None = None) -> str:
        params = {"step": step} if step else {}
        return self._request("GET", f"/api/v1/runs/{run_id}/logs", params=params).text

    def cache_lookup(self, key: str, *, project: str | None = None) -> CacheEntryOut | None:
        response = self._http.get(f"{self._p(project)}/pipeline-cache/{key}")
        if is_missing(response, "key"):
            return None
        raise_for_error(response)
        return CacheEntryOut.model_validate(response.json())

    def create_schedule(self, schedule: ScheduleIn, *, project: str | None = None) -> ScheduleOut:
        response = self._request(
            "POST", f"{self._p(project)}/schedules", json=schedule.model_dump(mode="json")
        )
        return ScheduleOut.model_validate(response.json())

    def record_remote_schedule(
        self, schedule: RemoteScheduleIn, *, project: str | None = None
    ) -> RemoteScheduleOut:
        """Record a schedule made on Vertex AI or Kubeflow, or update its record."""
        response = self._request(
            "POST",
            f"{self._p(project)}/remote-schedules",
            json=schedule.model_dump(mode="json", exclude_none=True),
        )
        return RemoteScheduleOut.model_validate(response.json())

    def list_remote_schedules(self, *, project: str | None = None) -> list[RemoteScheduleOut]:
        rows = self._request("GET", f"{self._p(project)}/remote-schedules").json()
        return [RemoteScheduleOut.model_validate(r) for r in rows]

    def list_schedules(self, *, project: str | None = None) -> list[ScheduleOut]:
        rows = self._request("GET", f"{self._p(project)}/schedules").json()
        return [ScheduleOut.model_validate(r) for r in rows]

    def get_schedule(self, name: str, *, project: str | None = None) -> ScheduleOut:
        return self._get(f"{self._p(project)}/schedules/{name}", ScheduleOut)

    def update_schedule(
        self, name: str, *, project: str | None = None, **changes: Any
    ) -> ScheduleOut:
        """Change fields of a schedule, e.g. ``paused=True`` or ``cron="0 4 * * *"``."""
        body = SchedulePatch(**changes).model_dump(mode="json", exclude_unset=True)
        response = self._request("PATCH", f"{self._p(project)}/schedules/{name}", json=body)
        return ScheduleOut.model_validate(response.json())

    def delete_schedule(self, name: str, *, project: str | None = None) -> None:
        self._request("DELETE", f"{self._p(project)}/schedules/{name}")

    def launch_run(self, launch: LaunchIn, *, project: str | None = None) -> RunOut:
        """Have the control plane run a pipeline whose code is on its machine."""
        response = self._request(
            "POST", f"{self._p(project)}/runs/launch", json=launch.model_dump(mode="json")
        )
        return RunOut.model_validate(response.json())

    def resume_run_remote(self, run_id: int) -> RunOut:
        """Have the control plane resume the run on its machine."""
        return RunOut.model_validate(self._request("POST", f"/api/v1/runs/{run_id}/resume").json())

    def cache_of_pipeline(
        self, pipeline: str, *, project: str | None = None, limit: int | None = None
    ) -> dict[str, CacheEntryOut]:
        """The cached entries written by runs of ``pipeline`` that this key's runs may reuse (the
        newest ``limit``, 1,000 by default), by key."""
        path = f"{self._p(project)}/pipeline-cache"
        return self._get(path, CacheLookupOut, pipeline=pipeline, limit=limit).entries

    def cache_lookup_many(
        self, keys: list[str], *, project: str | None = None
    ) -> dict[str, CacheEntryOut]:
        """The cached entries among ``keys`` (the missing ones are left out)."""
        response = self._request(
            "POST", f"{self._p(project)}/pipeline-cache/lookup", json={"keys": keys}
        )
        return CacheLookupOut.model_validate(response.json()).entries
