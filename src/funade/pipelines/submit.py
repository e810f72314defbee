"""``funade pipeline submit``: a pipeline compiled to KFP v2 IR and sent to Vertex AI Pipelines
or Kubeflow Pipelines as a run or a schedule, with a funade run that follows it.

What is sent is a list of plain HTTP requests (:class:`Request`) that ``--dry-run`` prints and
a real submission sends as printed: the same bodies as ``aiplatform.PipelineJob`` (Vertex's
REST API) and ``kfp.Client`` (KFP's ``v2beta1`` REST API) send for the compiled YAML. Each
engine is a small module (``submitvertex``, ``submitkfp``); this one checks what the user gave,
compiles, and records the funade run that ``submitfollow`` keeps in step with the remote job.

A submitted run's steps reach funade with the run's own token, stored in the engine's secret
store under ``funade-run-<id>`` (a Kubernetes Secret on Kubeflow, a Secret Manager secret on
Vertex) and referenced from the compiled pipeline by name: no token is ever in a request body
that creates a job, nor in what ``--dry-run`` prints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from funade.errors import FunadeError, InvalidInputError
from funade.pipelines.cron import check_cron
from funade.pipelines.dsl import Pipeline
from funade.pipelines.kfpir import DEFAULT_IMAGE, SecretsHook, compile_spec, kfp_name
from funade.pipelines.spec import PipelineSpec

__all__ = [
    "ENGINES",
    "REDACTED",
    "REDACTED_ENTRIES",
    "EngineError",
    "ListedJob",
    "RemoteSchedule",
    "RemoteState",
    "RemoteTask",
    "Request",
    "StateFields",
    "Submission",
    "check_host",
    "check_region",
    "check_vertex_project",
    "compile_submission",
    "parse_time",
    "remote_state",
    "send",
    "token_secret_name",
]

ENGINES = ("vertex", "kubeflow")
REDACTED = "<the run's token, made when the run is recorded; never printed>"
"""What ``--dry-run`` shows where a request carries the run's token (storing it as a secret)."""
REDACTED_ENTRIES = "<each recorded job's run id and token; never printed>"
"""What ``--dry-run`` shows for the entries ``follow`` writes into a per-schedule secret."""

_GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]{1,2}$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SERVICE_ACCOUNT = re.compile(
    r"^[a-z][-a-z0-9]{4,61}[a-z0-9]@[-a-z0-9.]+\.iam\.gserviceaccount\.com$"
)
_DISPLAY_NAME = 128


class EngineError(FunadeError):
    """The remote engine could not be reached, or refused a request; says which and why."""

    code = "engine_error"
    status: int | None = None
    """The engine's HTTP status when it answered (404: the job or schedule is gone)."""


@dataclass(frozen=True)
class Request:
    """One HTTP request of a submission: what ``--dry-run`` prints and what is sent."""

    method: str
    url: str
    body: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    purpose: str = ""
    content_type: str = ""
    """Another content type than JSON's for the body (Kubernetes' merge patch)."""

    def shown(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "url": self.url}
        if self.params:
            out["params"] = self.params
        if self.body is not None:
            out["body"] = self.body
        if self.purpose:
            out["purpose"] = self.purpose
        return out


@dataclass(frozen=True)
class Submission:
    """A compiled pipeline and how to run it: what both engines' requests are made from."""

    name: str
    """The pipeline's KFP name (``pipelineInfo.name``)."""
    display_name: str
    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any] | None
    params: dict[str, Any]
    """The parameters given with ``--param``, as the runtime config passes them."""
    cache: bool = True
    """False with ``--no-cache`` or ``--refresh``: every task's caching is switched off."""
    pipeline_root: str | None = None
    service_account: str | None = None
    schedule: str | None = None
    """A five-field cron expression (UTC): create a schedule instead of one run."""


@dataclass(frozen=True)
class RemoteTask:
    """One task of a remote job, in funade's step terms."""

    name: str
    state: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str = ""


@dataclass(frozen=True)
class RemoteState:
    """What the engine says of the job: its own state, and funade's run state for it."""

    engine_state: str
    state: str
    error: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    tasks: tuple[RemoteTask, ...] = ()


@dataclass(frozen=True)
class ListedJob:
    """A job a schedule started, as the engine lists it."""

    name: str
    """The name ``poll`` and ``cancel`` take (Vertex's resource name, KFP's run id)."""
    created_at: datetime | None
    state: RemoteState


@dataclass(frozen=True)
class RemoteSchedule:
    """A schedule on the engine (a Vertex ``Schedule``, a KFP recurring run)."""

    name: str
    engine_state: str
    active: bool
    """False once the engine starts no more runs of it (Vertex ``COMPLETED``); paused is
    still active: it may be resumed."""
    pipeline_spec: dict[str, Any]
    """The ``PipelineSpec`` its runs run."""
    experiment_id: str = ""
    """KFP: the experiment its runs are in."""


@dataclass(frozen=True)
class StateFields:
    """Where an engine's JSON has a job's state, times and tasks (Vertex's REST API writes
    camelCase, KFP's snake_case), and how its states map to funade's."""

    run_states: Mapping[str, str]
    task_states: Mapping[str, str]
    unspecified: str
    started: str
    finished: str
    tasks: tuple[str, str]
    task_name: str
    task_started: str
    task_finished: str


def _error(item: Mapping[str, Any]) -> str:
    error = item.get("error")
    return str(error.get("message") or "") if isinstance(error, dict) else ""


def remote_state(answer: Mapping[str, Any], fields: StateFields) -> RemoteState:
    """A job as the engine's GET answers it, in funade's terms (unknown states: running)."""
    state = str(answer.get("state") or fields.unspecified)
    holder = answer.get(fields.tasks[0])
    items = holder.get(fields.tasks[1]) if isinstance(holder, dict) else None
    tasks = tuple(
        RemoteTask(
            name=str(t.get(fields.task_name, "")),
            state=fields.task_states.get(str(t.get("state")), "pending"),
            started_at=parse_time(t.get(fields.task_started)),
            finished_at=parse_time(t.get(fields.task_finished)),
            error=_error(t),
        )
        for t in (items if isinstance(items, list) else [])
        if isinstance(t, dict)
    )
    return RemoteState(
        engine_state=state,
        state=fields.run_states.get(state, "running"),
        error=_error(answer),
        started_at=parse_time(answer.get(fields.started)),
        finished_at=parse_time(answer.get(fields.finished)),
        tasks=tasks,
    )


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as Google's and KFP's APIs write it (nanoseconds cut to micro)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def send(http: httpx.Client, request: Request, engine: str) -> dict[str, Any]:
    """Send ``request``; the answer's JSON. :class:`EngineError` names the engine, the
    request and what went wrong (never the request's body: it may hold the run's token)."""
    where = f"{request.method} {request.url}"
    try:
        if request.content_type:
            response = http.request(
                request.method,
                request.url,
                params=request.params or None,
                content=json.dumps(request.body).encode(),
                headers={"content-type": request.content_type},
            )
        else:
            response = http.request(
                request.method, request.url, params=request.params or None, json=request.body
            )
    except httpx.TransportError as exc:
        raise EngineError(
            f"{engine} could not be reached ({where}): {type(exc).__name__}: {exc}.",
            field="engine",
            value=request.url,
            fix="Check the address and your network, then try again.",
        ) from None
    if response.status_code >= 400:
        refused = EngineError(
            f"{engine} refused {where} with {response.status_code}: {_message(response)[:500]}",
            field="engine",
            value=request.url,
            fix="Fix what the engine names (permissions, names, quotas), then try again.",
        )
        refused.status = response.status_code
        raise refused
    if not response.content:
        return {}
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise EngineError(
            f"{engine} answered {where} with something that is not a JSON object.",
            field="engine",
            value=request.url,
            fix="Check that the address is the engine's API.",
        )
    return answer


def _message(response: httpx.Response) -> str:
    try:
        answer = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])  # Google's APIs
        for key in ("error_message", "message", "error"):
            if isinstance(answer.get(key), str):
                return str(answer[key])  # KFP's (grpc-gateway), Kubernetes'
    return json.dumps(answer)[:500]


def _bad(field_name: str, value: Any, message: str, fix: str) -> InvalidInputError:
    return InvalidInputError(message, field=field_name, value=value, fix=fix)


def check_vertex_project(project: str) -> str:
    """A Google Cloud project id (6 to 30 lower-case letters, digits, dashes) or number."""
    if _GCP_PROJECT.fullmatch(project) or (project.isascii() and project.isdigit()):
        return project
    raise _bad(
        "project",
        project,
        f"--project {project!r} is not a Google Cloud project id.",
        "Give the project's id (6 to 30 lower-case letters, digits and dashes, e.g. acme-ml) "
        "or its number.",
    )


def check_region(region: str) -> str:
    if _REGION.fullmatch(region):
        return region
    raise _bad(
        "region",
        region,
        f"--region {region!r} is not a Google Cloud region.",
        "Give a region Vertex AI Pipelines runs in, e.g. us-central1 or europe-west4.",
    )


def check_host(host: str, field_name: str = "host", what: str = "Kubeflow Pipelines") -> str:
    """An API's base URL (KFP's, by default): http(s), a host, no credentials, query or
    fragment."""
    parts = urlsplit(host)
    problem = ""
    if parts.scheme not in ("http", "https"):
        problem = f"its scheme is {parts.scheme or 'missing'!r}; only http and https are sent to"
    elif not parts.hostname:
        problem = "it has no host"
    elif parts.username is not None or parts.password is not None:
        problem = "it holds a user or password, which would be printed and logged"
    elif parts.query or parts.fragment:
        problem = "it has a query or fragment"
    if problem:
        raise _bad(
            field_name,
            parts._replace(netloc=parts.hostname or "").geturl() if parts.password else host,
            f"--{field_name} is not a {what} URL: {problem}.",
            "Give the API's base URL, e.g. https://kfp.example.com or http://localhost:8080 "
            "(credentials come from the environment, never the URL).",
        )
    return host.rstrip("/")


def check_k8s_name(value: str, field_name: str) -> str:
    if _K8S_NAME.fullmatch(value):
        return value
    raise _bad(
        field_name,
        value,
        f"--{field_name} {value!r} is not a Kubernetes name.",
        "Use lower-case letters, digits and dashes (at most 63), e.g. kubeflow.",
    )


def check_pipeline_root(root: str, engine: str) -> str:
    schemes = ("gs://",) if engine == "vertex" else ("gs://", "s3://", "minio://")
    bucket = root.split("//", 1)[-1]
    if root.startswith(schemes) and bucket and not any(c in root for c in " \n\r\t\"'`$\\"):
        return root.rstrip("/")
    raise _bad(
        "pipeline-root",
        root,
        f"--pipeline-root {root!r} is not a bucket path {engine} writes artifacts to.",
        f"Give a path starting with {' or '.join(schemes)}, e.g. gs://acme-ml/pipelines.",
    )


def check_service_account(account: str, engine: str) -> str:
    if engine == "vertex" and _SERVICE_ACCOUNT.fullmatch(account):
        return account
    if engine == "kubeflow" and _K8S_NAME.fullmatch(account):
        return account
    raise _bad(
        "service-account",
        account,
        f"--service-account {account!r} is not a "
        + ("Google service account's email." if engine == "vertex" else "Kubernetes name."),
        "Give e.g. pipelines@acme-ml.iam.gserviceaccount.com"
        if engine == "vertex"
        else "Give the Kubernetes service account's name, e.g. pipeline-runner.",
    )


def check_schedule(cron: str) -> str:
    return check_cron(cron, field="schedule")


def token_secret_name(run_id: int | str) -> str:
    """The secret (Kubernetes Secret, Secret Manager secret) holding run ``run_id``'s token."""
    return f"funade-run-{run_id}"


def display_name(spec: PipelineSpec, run_id: int | None) -> str:
    text = f"{spec.name} (funade run {run_id})" if run_id is not None else spec.name
    return text[:_DISPLAY_NAME]


def compile_submission(
    pipeline: Pipeline,
    spec: PipelineSpec,
    *,
    target: str,
    defaults: Mapping[str, Any],
    given: Mapping[str, Any],
    image: str = DEFAULT_IMAGE,
    step_env: Mapping[str, str] | None = None,
    step_secrets: Mapping[str, str] | None = None,
    secrets_hook: SecretsHook | None = None,
    job_input: tuple[str, str] | None = None,
    secret_volume: tuple[str, str] | None = None,
    **options: Any,
) -> Submission:
    """The submission of ``spec`` (its environment applied) with the steps given ``step_env``
    and ``step_secrets`` (references, never values) besides their own."""
    pipeline_spec, platform = compile_spec(
        spec,
        pipeline,
        defaults=defaults,
        image=image,
        target=target,
        step_env=step_env,
        step_secrets=step_secrets,
        secrets_hook=secrets_hook,
        job_input=job_input,
        secret_volume=secret_volume,
    )
    return Submission(
        name=kfp_name(spec.name),
        pipeline_spec=pipeline_spec,
        platform_spec=platform,
        params={k: v for k, v in given.items() if v is not None},
        **options,
    )


def shown(requests: list[Request]) -> str:
    """The requests as ``--dry-run`` prints them: JSON, one object per request."""
    return json.dumps([r.shown() for r in requests], indent=2, sort_keys=True)
