"""Kubeflow Pipelines: the ``v2beta1`` REST requests ``kfp.Client`` sends, the run's states in
funade's.

- a run: ``POST {host}/apis/v2beta1/runs`` with the ``V2beta1Run`` that
  ``kfp.Client.create_run_from_pipeline_package(file, arguments, run_name=...,
  experiment_name=..., pipeline_root=..., enable_caching=..., service_account=...)`` sends
  (tests/pipelines/test_submit_kfp.py runs that client against the same stand-in server and
  compares the bodies); the experiment is looked up by name first and made if missing, as
  the client does;
- a schedule: ``POST {host}/apis/v2beta1/recurringruns`` as ``Client.create_recurring_run(...,
  cron_expression=...)`` sends it; KFP's cron has six fields (seconds first), so funade's
  five-field expression is sent with ``0`` seconds;
- the run's token: a Kubernetes Secret ``funade-run-<id>`` in the namespace the run's pods
  run in (key ``token``), made through the Kubernetes API and mounted by the compiled platform
  spec as ``FUNADE_API_KEY``; deleted when the run ends;
- a schedule's steps: a per-schedule Secret ``funade-schedule-<key>`` mounted as a volume,
  one key per job written by the follower with merge patches (``scheduletoken``);
- following: ``GET {host}/apis/v2beta1/runs/ID`` and ``POST …/runs/ID:terminate``;
- following a schedule: ``GET {host}/apis/v2beta1/recurringruns/ID`` (its ``status``, its
  experiment, the spec its runs run), and the newest runs of its experiment (``GET …/runs?
  experiment_id=…``), those whose ``recurring_run_id`` is the schedule's.

Plain HTTP with httpx: the kfp SDK (and its pinned kubernetes and requests) is not needed.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from funade.errors import InvalidInputError
from funade.pipelines.scheduletoken import MOUNT, SCHEDULE_KEY, SECRET_ENV, TOKENS_ENV
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

__all__ = [
    "RUN_STATES",
    "TASK_STATES",
    "KubeflowEngine",
    "experiment_lookup",
    "kube_session",
    "run_requests",
    "token_requests",
]

API = "/apis/v2beta1"
EXPERIMENT_PLACEHOLDER = "<the id of experiment {name!r}, looked up (or made) first>"

_RECURRING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_LIST_PAGE = "50"
MERGE_PATCH = "application/merge-patch+json"

RUN_STATES = {
    "RUNTIME_STATE_UNSPECIFIED": "running",
    "PENDING": "running",
    "RUNNING": "running",
    "CANCELING": "running",
    "PAUSED": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "CANCELED": "cancelled",
    "SKIPPED": "skipped",
}
"""A KFP run's state → the funade run's."""

TASK_STATES = {
    "RUNTIME_STATE_UNSPECIFIED": "pending",
    "PENDING": "pending",
    "RUNNING": "running",
    "CANCELING": "running",
    "PAUSED": "running",
    "SUCCEEDED": "succeeded",
    "CACHED": "cached",
    "FAILED": "failed",
    "CANCELED": "cancelled",
    "SKIPPED": "skipped",
}


FIELDS = StateFields(
    run_states=RUN_STATES,
    task_states=TASK_STATES,
    unspecified="RUNTIME_STATE_UNSPECIFIED",
    started="created_at",
    finished="finished_at",
    tasks=("run_details", "task_details"),
    task_name="display_name",
    task_started="start_time",
    task_finished="end_time",
)


def caching_off(pipeline_spec: dict[str, Any]) -> dict[str, Any]:
    """Every task's cache off (``cachingOptions: {}``, KFP's false). ``kfp.Client``'s
    ``enable_caching=False`` switches off only the tasks at the pipeline's top level; funade
    switches off those inside conditions and fan-outs too."""
    spec = copy.deepcopy(pipeline_spec)
    for component in [spec["root"], *spec.get("components", {}).values()]:
        for task in component.get("dag", {}).get("tasks", {}).values():
            task["cachingOptions"] = {}
    return spec


def _package(sub: Submission) -> dict[str, Any]:
    """``pipeline_spec`` as the client sends it: the spec, or both specs when a platform
    spec (Kubernetes Secrets, timeouts) is there."""
    spec = sub.pipeline_spec if sub.cache else caching_off(sub.pipeline_spec)
    if sub.platform_spec:
        return {"pipeline_spec": spec, "platform_spec": sub.platform_spec}
    return spec


def experiment_lookup(host: str, name: str) -> Request:
    """How the client finds an experiment by name (then POSTs one if none)."""
    predicate = {"operation": 1, "key": "display_name", "stringValue": name}
    return Request(
        "GET",
        f"{host}{API}/experiments",
        params={"filter": json.dumps({"predicates": [predicate]})},
        purpose=f"find experiment {name!r} (made with POST {API}/experiments if missing)",
    )


def run_requests(sub: Submission, *, host: str, experiment_id: str) -> list[Request]:
    """The request that creates the run (or, with ``sub.schedule``, the recurring run)."""
    runtime: dict[str, Any] = {"parameters": dict(sub.params)}
    if sub.pipeline_root:
        runtime["pipeline_root"] = sub.pipeline_root
    body: dict[str, Any] = {
        "display_name": sub.display_name,
        "experiment_id": experiment_id,
        "pipeline_spec": _package(sub),
        "runtime_config": runtime,
    }
    if sub.service_account:
        body["service_account"] = sub.service_account
    if sub.schedule:
        body |= {
            "max_concurrency": 1,
            "mode": "ENABLE",
            "trigger": {"cron_schedule": {"cron": f"0 {sub.schedule}"}},
        }
        return [Request("POST", f"{host}{API}/recurringruns", body, purpose="create the schedule")]
    return [Request("POST", f"{host}{API}/runs", body, purpose="create the run")]


def token_requests(
    kube_api: str, namespace: str, run_id: int | str, token: str | None
) -> list[Request]:
    """Store the run's token as a Kubernetes Secret (``token`` None: shown redacted)."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"labels": {"funade-run": str(run_id)}, "name": token_secret_name(run_id)},
        "stringData": {"token": token if token is not None else REDACTED},
        "type": "Opaque",
    }
    return [
        Request(
            "POST",
            f"{kube_api}/api/v1/namespaces/{namespace}/secrets",
            secret,
            purpose="a Kubernetes Secret with the run's token, mounted as FUNADE_API_KEY",
        )
    ]


def secret_reference(run_id: int | str) -> str:
    """The ``k8s:`` reference steps get for the run's token."""
    return f"k8s:{token_secret_name(run_id)}/token"


def kfp_session(token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(headers=headers, timeout=60)


def kube_session(kubeconfig: str | None = None) -> tuple[str, httpx.Client]:
    """The Kubernetes API's URL and a client with the pod's credentials (in a cluster) or the
    current context of ``kubeconfig`` (files as $KUBECONFIG lists them; the kubernetes
    package's default, ~/.kube/config, if None): a token or a client certificate."""
    try:
        from kubernetes import client as k8s
        from kubernetes import config
    except ImportError:
        raise InvalidInputError(
            "Submitting to Kubeflow stores the run's token as a Kubernetes Secret, which "
            "needs the kubernetes package (to read your kubeconfig).",
            field="target",
            value="kubeflow",
            fix="pip install 'funade[kubeflow]'",
        ) from None
    conf = k8s.Configuration()
    try:
        config.load_incluster_config(client_configuration=conf)
    except config.ConfigException:
        try:
            config.load_kube_config(config_file=kubeconfig, client_configuration=conf)
        except (config.ConfigException, OSError) as exc:
            raise InvalidInputError(
                f"No Kubernetes credentials to store the run's token with: {exc}",
                field="kubeconfig",
                fix="Point KUBECONFIG (or ~/.kube/config) at the cluster Kubeflow runs on, "
                "with a context that may create Secrets in --namespace.",
            ) from None
    token = conf.get_api_key_with_prefix("authorization")
    cert = (conf.cert_file, conf.key_file) if conf.cert_file else None
    return conf.host, httpx.Client(
        headers={"Authorization": token} if token else {},
        verify=conf.ssl_ca_cert or conf.verify_ssl,
        cert=cert,
        timeout=60,
    )


class KubeflowEngine:
    """A Kubeflow Pipelines API (and the Kubernetes API its runs' pods live in)."""

    name = "kubeflow"

    def __init__(
        self,
        host: str,
        *,
        http: httpx.Client,
        experiment: str = "Default",
        namespace: str = "kubeflow",
        kube: tuple[str, httpx.Client] | None = None,
        kubeconfig: str | None = None,
    ) -> None:
        self.host, self.http, self.experiment, self.namespace = host, http, experiment, namespace
        self.kube, self.kubeconfig = kube, kubeconfig
        self._opened: set[str] = set()
        """Per-schedule Secrets whose stale keys were removed (at the first save)."""

    def step_secrets(self, run_id: int | str) -> tuple[dict[str, str], None]:
        return {"FUNADE_API_KEY": secret_reference(run_id)}, None

    def _kube(self) -> tuple[str, httpx.Client]:
        if self.kube is None:
            self.kube = kube_session(self.kubeconfig)
        return self.kube

    def token_requests(self, run_id: int | str, token: str | None) -> list[Request]:
        kube_api = (
            self._kube()[0] if token is not None else "<the Kubernetes API of your kubeconfig>"
        )
        return token_requests(kube_api, self.namespace, run_id, token)

    def send_token(self, requests: list[Request]) -> None:
        for request in requests:
            send(self._kube()[1], request, "Kubernetes")

    def create_requests(self, sub: Submission, *, experiment_id: str = "") -> list[Request]:
        lookup = [] if experiment_id else [experiment_lookup(self.host, self.experiment)]
        experiment_id = experiment_id or EXPERIMENT_PLACEHOLDER.format(name=self.experiment)
        return lookup + run_requests(sub, host=self.host, experiment_id=experiment_id)

    def experiment_id(self) -> str:
        found = send(self.http, experiment_lookup(self.host, self.experiment), "Kubeflow")
        experiments = found.get("experiments") or []
        if experiments and isinstance(experiments[0], dict):
            return str(experiments[0].get("experiment_id", ""))
        made = send(
            self.http,
            Request("POST", f"{self.host}{API}/experiments", {"display_name": self.experiment}),
            "Kubeflow",
        )
        return str(made.get("experiment_id", ""))

    def create(self, sub: Submission) -> tuple[str, str]:
        (request,) = self.create_requests(sub, experiment_id=self.experiment_id())
        answer = send(self.http, request, "Kubeflow")
        if sub.schedule:
            name = str(answer.get("recurring_run_id", ""))
            return name, f"{self.host}/#/recurringrun/details/{name}"
        name = str(answer.get("run_id", ""))
        return name, f"{self.host}/#/runs/details/{name}"

    def poll(self, job: str) -> RemoteState:
        answer = send(self.http, Request("GET", f"{self.host}{API}/runs/{job}"), "Kubeflow")
        return remote_state(answer, FIELDS)

    def cancel(self, job: str) -> None:
        send(self.http, Request("POST", f"{self.host}{API}/runs/{job}:terminate", {}), "Kubeflow")

    def schedule_path(self, text: str) -> str:
        """A recurring run's id, checked (it goes into URLs)."""
        if _RECURRING_ID.fullmatch(text):
            return text
        raise InvalidInputError(
            f"{text!r} is not a Kubeflow recurring run's id.",
            field="schedule",
            value=text,
            fix="Give the id `funade pipeline submit --schedule` printed (letters, digits and "
            "dashes, e.g. 5f0c…-…).",
        )

    def get_schedule(self, name: str) -> RemoteSchedule:
        answer = send(
            self.http, Request("GET", f"{self.host}{API}/recurringruns/{name}"), "Kubeflow"
        )
        status = str(answer.get("status") or "STATUS_UNSPECIFIED")
        spec = answer.get("pipeline_spec")
        if isinstance(spec, dict) and isinstance(spec.get("pipeline_spec"), dict):
            spec = spec["pipeline_spec"]  # with a platform spec, both are sent
        return RemoteSchedule(
            name=name,
            engine_state=status,
            active=True,  # a disabled recurring run may be enabled again
            pipeline_spec=spec if isinstance(spec, dict) else {},
            experiment_id=str(answer.get("experiment_id") or ""),
        )

    def list_jobs(self, schedule: RemoteSchedule) -> list[ListedJob]:
        """The newest runs of the schedule's experiment that ``schedule`` started."""
        params = {"sort_by": "created_at desc", "page_size": _LIST_PAGE}
        if schedule.experiment_id:
            params["experiment_id"] = schedule.experiment_id
        answer = send(
            self.http, Request("GET", f"{self.host}{API}/runs", params=params), "Kubeflow"
        )
        runs = answer.get("runs")
        return [
            ListedJob(
                name=str(run["run_id"]),
                created_at=parse_time(run.get("created_at")),
                state=remote_state(run, FIELDS),
            )
            for run in (runs if isinstance(runs, list) else [])
            if isinstance(run, dict)
            and run.get("recurring_run_id") == schedule.name
            and isinstance(run.get("run_id"), str)
        ]

    def job_params(self, job: str) -> dict[str, Any]:
        answer = send(self.http, Request("GET", f"{self.host}{API}/runs/{job}"), "Kubeflow")
        runtime = answer.get("runtime_config")
        values = runtime.get("parameters") if isinstance(runtime, dict) else None
        return dict(values) if isinstance(values, dict) else {}

    def job_console(self, job: str) -> str:
        return f"{self.host}/#/runs/details/{job}"

    def forget_token(self, run_id: int | str) -> None:
        kube_api, http = self._kube()
        url = f"{kube_api}/api/v1/namespaces/{self.namespace}/secrets/{token_secret_name(run_id)}"
        send(http, Request("DELETE", url), "Kubernetes")

    # -- a schedule's per-schedule secret (scheduletoken) --------------------------------

    def schedule_wiring(self, secret: str) -> tuple[dict[str, str], tuple[str, str] | None]:
        """What a schedule's steps get: the Secret mounted as a volume (which the kubelet
        updates in place, where a variable from a Secret is fixed at the pod's start)."""
        return {SECRET_ENV: secret, TOKENS_ENV: f"file:{MOUNT}"}, (secret, MOUNT)

    def schedule_secret_requests(self, secret: str, kube_api: str = "") -> list[Request]:
        """Create the per-schedule Secret (empty), what ``follow`` writes into it (shown
        redacted), and its deletion (by ``follow``, once the schedule is gone)."""
        kube_api = kube_api or "<the Kubernetes API of your kubeconfig>"
        base = f"{kube_api}/api/v1/namespaces/{self.namespace}/secrets"
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"labels": {"funade-schedule": "true"}, "name": secret},
            "type": "Opaque",
        }
        return [
            Request(
                "POST",
                base,
                body,
                purpose="a Kubernetes Secret for the run tokens of the schedule's jobs, "
                "which `funade pipeline follow` writes and the steps read from a volume",
            ),
            Request(
                "PATCH",
                f"{base}/{secret}",
                {"data": {"<job>": REDACTED_ENTRIES}},
                purpose="sent by `funade pipeline follow` for each job it records (the key "
                "set to null when the run ends)",
                content_type=MERGE_PATCH,
            ),
            Request(
                "DELETE",
                f"{base}/{secret}",
                purpose="sent by `funade pipeline follow` once the schedule is gone",
            ),
        ]

    def create_schedule_secret(self, secret: str) -> None:
        kube_api, http = self._kube()
        send(http, self.schedule_secret_requests(secret, kube_api)[0], "Kubernetes")

    def delete_schedule_secret(self, secret: str) -> None:
        kube_api, http = self._kube()
        send(http, self.schedule_secret_requests(secret, kube_api)[2], "Kubernetes")

    def save_entries(
        self, secret: str, schedule: str, entries: Mapping[str, str], dropped: Iterable[str]
    ) -> None:
        """Patch the Secret: one key per job (``dropped`` ones removed) and ``schedule``; at
        the first save, keys a follower before left are removed too."""
        kube_api, http = self._kube()
        url = f"{kube_api}/api/v1/namespaces/{self.namespace}/secrets/{secret}"
        gone: set[str] = set(dropped)
        if secret not in self._opened:
            found = send(http, Request("GET", url), "Kubernetes").get("data")
            gone |= set(found) if isinstance(found, dict) else set()
        data: dict[str, str | None] = dict.fromkeys(gone - set(entries) - {SCHEDULE_KEY})
        data[SCHEDULE_KEY] = base64.b64encode(schedule.encode()).decode()
        data |= {k: base64.b64encode(v.encode()).decode() for k, v in entries.items()}
        patch = Request("PATCH", url, {"data": data}, content_type=MERGE_PATCH)
        send(http, patch, "Kubernetes")
        self._opened.add(secret)
