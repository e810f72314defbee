"""Vertex AI Pipelines: the REST requests ``aiplatform`` sends, the job's states in funade's.

- a run: ``POST {endpoint}/v1/projects/P/locations/R/pipelineJobs?pipelineJobId=ID`` with the
  ``PipelineJob`` that ``aiplatform.PipelineJob(template_path=..., pipeline_root=...,
  parameter_values=..., enable_caching=...)`` builds and ``.submit(service_account=...)``
  sends (tests/pipelines/test_submit_vertex.py compares them field by field);
- a schedule: ``POST …/schedules`` with the ``Schedule`` of
  ``aiplatform.PipelineJobSchedule(job, display_name).create(cron=...)``;
- the run's token: a Secret Manager secret ``funade-run-<id>`` in the job's project (created,
  given one version, deleted when the run ends), that steps read by reference
  (``vertexrefs``); Vertex AI ignores Kubernetes Secrets;
- a schedule's steps: a per-schedule secret ``funade-schedule-<key>`` whose ``latest``
  version the follower rewrites (the versions before destroyed) and the steps read
  (``scheduletoken``);
- following: ``GET …/pipelineJobs/ID`` (``state``, ``error``, ``jobDetail.taskDetails``) and
  ``POST …/pipelineJobs/ID:cancel``;
- following a schedule: ``GET …/schedules/ID`` (its ``state``, the job it makes), and its jobs
  as ``PipelineJobSchedule.list_jobs()`` lists them (``GET …/pipelineJobs?filter=
  schedule_name=…`` with its ``readMask``), newest first; a new job's parameters by its GET.

Requests are sent with httpx and the machine's Google credentials (``google-auth``, the
``vertex`` extra), so ``--dry-run`` prints exactly what is sent.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from funade.errors import InvalidInputError
from funade.pipelines.kfpir import SecretsHook
from funade.pipelines.scheduletoken import SECRET_ENV, TOKENS_ENV
from funade.pipelines.submit import (
    REDACTED,
    REDACTED_ENTRIES,
    ListedJob,
    RemoteSchedule,
    RemoteState,
    Request,
    StateFields,
    Submission,
    parse_time,
    remote_state,
    send,
    token_secret_name,
)
from funade.pipelines.vertexrefs import SECRETS_ENDPOINT, secret_manager_hook

__all__ = [
    "ENDPOINT",
    "RUN_STATES",
    "SECRETS_ENDPOINT",
    "TASK_STATES",
    "VertexEngine",
    "google_session",
    "job_id",
    "job_requests",
    "token_requests",
]

ENDPOINT = "https://{region}-aiplatform.googleapis.com"
CONSOLE = "https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/{kind}/{id}"

RUN_STATES = {
    "PIPELINE_STATE_UNSPECIFIED": "running",
    "PIPELINE_STATE_QUEUED": "running",
    "PIPELINE_STATE_PENDING": "running",
    "PIPELINE_STATE_RUNNING": "running",
    "PIPELINE_STATE_CANCELLING": "running",
    "PIPELINE_STATE_PAUSED": "running",
    "PIPELINE_STATE_SUCCEEDED": "succeeded",
    "PIPELINE_STATE_FAILED": "failed",
    "PIPELINE_STATE_CANCELLED": "cancelled",
}
"""A PipelineJob's state → the funade run's (those not finished: still running)."""

TASK_STATES = {
    "STATE_UNSPECIFIED": "pending",
    "PENDING": "pending",
    "RUNNING": "running",
    "CANCEL_PENDING": "running",
    "CANCELLING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "SKIPPED": "cached",
    "NOT_TRIGGERED": "skipped",
}
"""A task's state → the step's (Vertex marks a task served from its cache SKIPPED)."""

FIELDS = StateFields(
    run_states=RUN_STATES,
    task_states=TASK_STATES,
    unspecified="PIPELINE_STATE_UNSPECIFIED",
    started="startTime",
    finished="endTime",
    tasks=("jobDetail", "taskDetails"),
    task_name="taskName",
    task_started="startTime",
    task_finished="endTime",
)


SCHEDULE_STATES = {"ACTIVE": True, "PAUSED": True, "COMPLETED": False}
"""A Schedule's state → whether it may still start runs (unknown states: it may)."""
_SCHEDULE = re.compile(
    r"^projects/([a-z0-9-]{1,30})/locations/([a-z0-9-]{1,40})/schedules/([0-9]{1,20})$"
)
_LIST_PAGE = "50"
LIST_FIELDS = (
    "name,state,displayName,pipelineSpec.pipelineInfo,createTime,startTime,endTime,updateTime,"
    "labels,templateUri,templateMetadata.version,jobDetail.pipelineRunContext,"
    "jobDetail.pipelineContext"
)
"""The fields aiplatform's listing asks for (its "simple view"): not the jobs' specs."""


def job_id(name: str, now: datetime | None = None) -> str:
    """The job's id as ``aiplatform`` makes it: ``<pipeline name>-<YYYYmmddHHMMSS>`` (UTC)."""
    return f"{name}-{(now or datetime.now(UTC)).strftime('%Y%m%d%H%M%S')}"


def caching_off(pipeline_spec: dict[str, Any]) -> dict[str, Any]:
    """Every task's cache off, as ``PipelineJob(enable_caching=False)`` writes it."""
    pipeline_spec = copy.deepcopy(pipeline_spec)
    components = [pipeline_spec["root"], *pipeline_spec.get("components", {}).values()]
    for component in components:
        for task in component.get("dag", {}).get("tasks", {}).values():
            task["cachingOptions"] = {"enableCache": False}
    return pipeline_spec


def _pipeline_job(sub: Submission, *, schedule: bool = False) -> dict[str, Any]:
    if sub.pipeline_root is None:
        raise InvalidInputError(
            "Vertex AI needs a bucket to write the pipeline's artifacts to, and none was given.",
            field="pipeline-root",
            fix="Give --pipeline-root gs://BUCKET/PATH (a bucket the job's service account "
            "may write).",
        )
    spec = caching_off(sub.pipeline_spec) if not sub.cache else sub.pipeline_spec
    runtime: dict[str, Any] = {"gcsOutputDirectory": sub.pipeline_root}
    if sub.params:
        runtime["parameterValues"] = dict(sub.params)
    job: dict[str, Any] = {} if schedule else {"displayName": sub.display_name}
    job |= {"pipelineSpec": spec, "runtimeConfig": runtime}
    if sub.service_account:
        job["serviceAccount"] = sub.service_account
    return job


def job_requests(
    sub: Submission, *, project: str, region: str, job: str, endpoint: str | None = None
) -> list[Request]:
    """The request that creates the job (or, with ``sub.schedule``, its schedule)."""
    base = f"{endpoint or ENDPOINT.format(region=region)}/v1/projects/{project}/locations/{region}"
    if sub.schedule:
        body = {
            "createPipelineJobRequest": {
                "parent": f"projects/{project}/locations/{region}",
                "pipelineJob": _pipeline_job(sub, schedule=True),
            },
            "cron": sub.schedule,
            "displayName": sub.display_name,
            "maxConcurrentRunCount": "1",
        }
        return [Request("POST", f"{base}/schedules", body, purpose="create the schedule")]
    return [
        Request(
            "POST",
            f"{base}/pipelineJobs",
            _pipeline_job(sub),
            params={"pipelineJobId": job},
            purpose="create the pipeline job",
        )
    ]


def secret_path(project: str, run_id: int | str) -> str:
    return f"projects/{project}/secrets/{token_secret_name(run_id)}"


def token_requests(
    project: str, run_id: int | str, token: str | None, *, endpoint: str = SECRETS_ENDPOINT
) -> list[Request]:
    """Store the run's token as a Secret Manager secret (``token`` None: shown redacted)."""
    data = base64.b64encode(token.encode()).decode() if token is not None else REDACTED
    return [
        Request(
            "POST",
            f"{endpoint}/v1/projects/{project}/secrets",
            {"labels": {"funade-run": str(run_id)}, "replication": {"automatic": {}}},
            params={"secretId": token_secret_name(run_id)},
            purpose="a secret for the run's token, which the steps read by reference",
        ),
        Request(
            "POST",
            f"{endpoint}/v1/{secret_path(project, run_id)}:addVersion",
            {"payload": {"data": data}},
            purpose="the run's token as the secret's one version",
        ),
    ]


def secret_reference(project: str, run_id: int | str) -> str:
    """The ``gsm:`` reference steps get for the run's token."""
    return f"gsm:{secret_path(project, run_id)}/versions/latest"


def console_url(project: str, region: str, name: str, kind: str = "runs") -> str:
    """Where the Cloud console shows a job (``runs``) or a schedule, as aiplatform says."""
    page = CONSOLE.format(region=region, kind=kind, id=name.rsplit("/", 1)[-1])
    return f"{page}?project={project}"


def google_session() -> httpx.Client:
    """An httpx client that sends the machine's Google credentials (application default)."""
    try:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests
    except ImportError:
        raise InvalidInputError(
            "Submitting to Vertex AI needs google-auth, which is not installed.",
            field="target",
            value="vertex",
            fix="pip install 'funade[vertex]'",
        ) from None
    try:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise InvalidInputError(
            f"No Google credentials to submit to Vertex AI with: {exc}",
            field="credentials",
            fix="Run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account's key file.",
        ) from None
    request = google.auth.transport.requests.Request()

    def auth(outgoing: httpx.Request) -> httpx.Request:
        if not credentials.valid:
            credentials.refresh(request)  # type: ignore[no-untyped-call]
        outgoing.headers["Authorization"] = f"Bearer {credentials.token}"
        return outgoing

    return httpx.Client(auth=auth, timeout=60)


class VertexEngine:
    """A Vertex AI project and region: what ``submitrun`` and ``submitfollow`` ask of it."""

    name = "vertex"

    def __init__(
        self,
        project: str,
        region: str,
        *,
        http: httpx.Client,
        endpoint: str | None = None,
        secrets_endpoint: str = SECRETS_ENDPOINT,
    ) -> None:
        self.project, self.region, self.http = project, region, http
        self.endpoint = (endpoint or ENDPOINT.format(region=region)).rstrip("/")
        self.secrets_endpoint = secrets_endpoint.rstrip("/")
        self._versions: dict[str, list[str]] = {}
        """The per-schedule secrets' versions that hold entries (destroyed when replaced)."""

    def step_secrets(self, run_id: int | str) -> tuple[dict[str, str], SecretsHook]:
        """What every step gets: the run's token by reference, and how secrets are passed."""
        reference = secret_reference(self.project, run_id)
        return {"FUNADE_API_KEY": reference}, secret_manager_hook(self.project)

    def token_requests(self, run_id: int | str, token: str | None) -> list[Request]:
        return token_requests(self.project, run_id, token, endpoint=self.secrets_endpoint)

    def send_token(self, requests: list[Request]) -> None:
        for request in requests:
            send(self.http, request, "Secret Manager")

    def create_requests(self, sub: Submission, *, experiment_id: str = "") -> list[Request]:
        return job_requests(
            sub,
            project=self.project,
            region=self.region,
            job=job_id(sub.name),
            endpoint=self.endpoint,
        )

    def create(self, sub: Submission) -> tuple[str, str]:
        """Create the job (or schedule): its resource name and where to see it."""
        (request,) = self.create_requests(sub)
        answer = send(self.http, request, "Vertex AI")
        name = str(answer.get("name") or "")
        kind = "schedules" if sub.schedule else "runs"
        return name, console_url(self.project, self.region, name, kind)

    def poll(self, job: str) -> RemoteState:
        answer = send(self.http, Request("GET", f"{self.endpoint}/v1/{job}"), "Vertex AI")
        return remote_state(answer, FIELDS)

    def cancel(self, job: str) -> None:
        send(self.http, Request("POST", f"{self.endpoint}/v1/{job}:cancel", {}), "Vertex AI")

    # -- a schedule's per-schedule secret (scheduletoken) --------------------------------

    def schedule_wiring(self, secret: str) -> tuple[dict[str, str], tuple[str, str] | None]:
        """What a schedule's steps get: where to read the secret's latest version."""
        reference = f"gsm:projects/{self.project}/secrets/{secret}/versions/latest"
        return {SECRET_ENV: secret, TOKENS_ENV: reference}, None

    def schedule_secret_requests(self, secret: str) -> list[Request]:
        """Create the per-schedule secret (no version yet), what ``follow`` writes into it
        (shown redacted), and its deletion (by ``follow``, once the schedule is gone)."""
        base = f"{self.secrets_endpoint}/v1/projects/{self.project}/secrets"
        return [
            Request(
                "POST",
                base,
                {"labels": {"funade-schedule": "true"}, "replication": {"automatic": {}}},
                params={"secretId": secret},
                purpose="a secret for the run tokens of the schedule's jobs, which "
                "`funade pipeline follow` writes and the steps read by reference",
            ),
            Request(
                "POST",
                f"{base}/{secret}:addVersion",
                {"payload": {"data": REDACTED_ENTRIES}},
                purpose="sent by `funade pipeline follow` for each job it records and ends "
                "(the version before is destroyed)",
            ),
            Request(
                "DELETE",
                f"{base}/{secret}",
                purpose="sent by `funade pipeline follow` once the schedule is gone",
            ),
        ]

    def create_schedule_secret(self, secret: str) -> None:
        send(self.http, self.schedule_secret_requests(secret)[0], "Secret Manager")

    def delete_schedule_secret(self, secret: str) -> None:
        send(self.http, self.schedule_secret_requests(secret)[2], "Secret Manager")

    def save_entries(
        self, secret: str, schedule: str, entries: Mapping[str, str], dropped: Iterable[str]
    ) -> None:
        """Write the entries as the secret's new version, then destroy the versions before
        (at the first save, every enabled one: a follower before may have left tokens)."""
        base = f"{self.secrets_endpoint}/v1/projects/{self.project}/secrets/{secret}"
        payload = {"schedule": schedule, "jobs": {k: json.loads(v) for k, v in entries.items()}}
        data = base64.b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
        if secret not in self._versions:
            listed = send(
                self.http,
                Request("GET", f"{base}/versions", params={"filter": "state:ENABLED"}),
                "Secret Manager",
            )
            versions = listed.get("versions")
            self._versions[secret] = [
                str(v["name"])
                for v in (versions if isinstance(versions, list) else [])
                if isinstance(v, dict) and isinstance(v.get("name"), str)
            ]
        request = Request("POST", f"{base}:addVersion", {"payload": {"data": data}})
        made = str(send(self.http, request, "Secret Manager").get("name") or "")
        before, self._versions[secret] = self._versions[secret], [made]
        for name in before:
            if name != made and name.startswith(f"projects/{self.project}/secrets/{secret}/"):
                url = f"{self.secrets_endpoint}/v1/{name}:destroy"
                send(self.http, Request("POST", url, {}), "Secret Manager")

    def forget_token(self, run_id: int | str) -> None:
        url = f"{self.secrets_endpoint}/v1/{secret_path(self.project, run_id)}"
        send(self.http, Request("DELETE", url), "Secret Manager")

    def schedule_path(self, text: str) -> str:
        """A schedule's resource name, from it or its number (in ``--project``/``--region``)."""
        if text.isascii() and text.isdigit() and len(text) <= 20:
            return f"projects/{self.project}/locations/{self.region}/schedules/{text}"
        found = _SCHEDULE.fullmatch(text)
        if found and found[2] == self.region:
            return text
        raise InvalidInputError(
            f"{text!r} is not a Vertex AI schedule in region {self.region}.",
            field="schedule",
            value=text,
            fix="Give the schedule's resource name as `funade pipeline submit --schedule` "
            f"printed it (projects/P/locations/{self.region}/schedules/ID), or its ID.",
        )

    def get_schedule(self, name: str) -> RemoteSchedule:
        answer = send(self.http, Request("GET", f"{self.endpoint}/v1/{name}"), "Vertex AI")
        state = str(answer.get("state") or "STATE_UNSPECIFIED")
        made = answer.get("createPipelineJobRequest")
        job = made.get("pipelineJob") if isinstance(made, dict) else None
        spec = job.get("pipelineSpec") if isinstance(job, dict) else None
        return RemoteSchedule(
            name=name,
            engine_state=state,
            active=SCHEDULE_STATES.get(state, True),
            pipeline_spec=spec if isinstance(spec, dict) else {},
        )

    def list_jobs(self, schedule: RemoteSchedule) -> list[ListedJob]:
        """The newest jobs ``schedule`` started: the filter and fields of aiplatform's
        ``PipelineJobSchedule.list_jobs()``, newest first."""
        parent = schedule.name.rsplit("/schedules/", 1)[0]
        params = {
            "filter": f"schedule_name={schedule.name}",
            "readMask": LIST_FIELDS,
            "orderBy": "create_time desc",
            "pageSize": _LIST_PAGE,
        }
        url = f"{self.endpoint}/v1/{parent}/pipelineJobs"
        answer = send(self.http, Request("GET", url, params=params), "Vertex AI")
        jobs = answer.get("pipelineJobs")
        return [
            ListedJob(
                name=str(job["name"]),
                created_at=parse_time(job.get("createTime")),
                state=remote_state(job, FIELDS),
            )
            for job in (jobs if isinstance(jobs, list) else [])
            if isinstance(job, dict)
            and isinstance(job.get("name"), str)
            and job.get("scheduleName", schedule.name) == schedule.name
        ]

    def job_params(self, job: str) -> dict[str, Any]:
        """The job's runtime parameter values (which the listing leaves out)."""
        answer = send(self.http, Request("GET", f"{self.endpoint}/v1/{job}"), "Vertex AI")
        runtime = answer.get("runtimeConfig")
        values = runtime.get("parameterValues") if isinstance(runtime, dict) else None
        return dict(values) if isinstance(values, dict) else {}

    def job_console(self, job: str) -> str:
        return console_url(self.project, self.region, job)
