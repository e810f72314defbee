"""A submitted run follows the remote job: a real control plane on a free port records it, a
stand-in of Vertex's (or KFP's) REST API on another plays the job's states, and the follower
reports them to funade with the run's own token, as a local run's runner does."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from funade.client import Client
from funade.errors import AuthenticationError, InvalidInputError, PermissionDeniedError
from funade.pipelines.spec import PipelineSpec
from funade.pipelines.submit import EngineError
from funade.pipelines.submitfollow import follow
from funade.pipelines.submitkfp import KubeflowEngine
from funade.pipelines.submitrun import SubmitOptions, Submitted, submit
from funade.pipelines.submitvertex import VertexEngine
from tests.pipelines.standin import FLOW as STANDIN_FLOW
from tests.pipelines.standin import Seen, StandIn, standin

PROJECT, REGION = "acme-ml", "europe-west4"
ROOT = "gs://acme-ml/pipelines"
JOBS = rf"/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs"

FLOW = STANDIN_FLOW.format(options="")


def _task(name: str, state: str, error: str = "") -> dict[str, Any]:
    task: dict[str, Any] = {"taskName": name, "state": state, "startTime": "2026-12-07T10:00:00Z"}
    if state in ("SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"):
        task["endTime"] = "2026-12-07T10:01:00.123456789Z"
    if error:
        task["error"] = {"message": error}
    return task


class Script:
    """The job's answers to GET, one per poll (the last repeated)."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.polls = 0

    def __call__(self, seen: Seen) -> tuple[int, Any]:
        answer = self.answers[min(self.polls, len(self.answers) - 1)]
        self.polls += 1
        return 200, answer


@pytest.fixture
def vertex() -> Iterator[StandIn]:
    with standin() as api:
        api.route("POST", JOBS, lambda s: (200, {"name": f"{JOBS[4:]}/{s.query['pipelineJobId']}"}))
        api.route("POST", rf"/v1/projects/{PROJECT}/secrets", (200, {}))
        api.route("POST", rf"/v1/projects/{PROJECT}/secrets/[^/]+:addVersion", (200, {}))
        api.route("DELETE", rf"/v1/projects/{PROJECT}/secrets/[^/]+", (200, {}))
        yield api


@pytest.fixture
def engine(vertex: StandIn) -> Iterator[VertexEngine]:
    with httpx.Client() as http:
        yield VertexEngine(
            PROJECT, REGION, http=http, endpoint=vertex.url, secrets_endpoint=vertex.url
        )


@pytest.fixture
def submitted(
    write_pipeline: Callable[..., str], engine: VertexEngine, admin: Client, app_url: str
) -> Submitted:
    options = SubmitOptions(pipeline_root=ROOT, funade_url=app_url)
    return submit(engine, write_pipeline(FLOW), options, admin)


def _follow(admin: Client, done: Submitted, engine: Any, **kwargs: Any) -> Any:
    assert done.run is not None
    with admin.with_key(done.token) as reporter:
        return follow(
            reporter, done.run, done.spec, engine, done.job, interval=0, sleep=lambda _: None,
            **kwargs,
        )  # fmt: skip


def test_submit_records_a_run_and_stores_its_token_as_a_secret(
    submitted: Submitted, vertex: StandIn, admin: Client
) -> None:
    run = submitted.run
    assert run is not None
    assert run.state == "running"
    assert run.runner["engine"] == "vertex"
    assert run.runner["job"] == submitted.job
    assert submitted.job.startswith(f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/flow-")
    (made,) = vertex.requests("POST", rf"/v1/projects/{PROJECT}/secrets")
    assert made.query == {"secretId": f"funade-run-{run.id}"}
    (version,) = vertex.requests("POST", rf"/v1/projects/{PROJECT}/secrets/.+:addVersion")
    assert version.path.endswith(f"/secrets/funade-run-{run.id}:addVersion")
    assert base64.b64decode(version.body["payload"]["data"]).decode() == submitted.token
    (job,) = vertex.requests("POST", JOBS)
    assert submitted.token not in str(job.body)
    assert job.body["displayName"] == f"flow (funade run {run.id})"
    # what was sent, as shown, holds no token either
    assert submitted.token not in str([r.shown() for r in submitted.requests])


def test_the_run_follows_the_job_to_its_success(
    submitted: Submitted, vertex: StandIn, engine: VertexEngine, admin: Client
) -> None:
    name = submitted.job.rsplit("/", 1)[-1]
    vertex.route(
        "GET",
        rf"{JOBS}/{name}",
        Script(
            {"state": "PIPELINE_STATE_PENDING"},
            {"state": "PIPELINE_STATE_RUNNING", "jobDetail": {"taskDetails": [
                _task("flow", "RUNNING"), _task("load", "RUNNING")]}},
            {"state": "PIPELINE_STATE_SUCCEEDED", "endTime": "2026-12-07T10:02:00Z",
             "jobDetail": {"taskDetails": [
                 _task("flow", "SUCCEEDED"), _task("load", "SKIPPED"), _task("fit", "SUCCEEDED")]}},
        ),
    )  # fmt: skip
    changes: list[str] = []
    ended = _follow(admin, submitted, engine, on_change=lambda s: changes.append(s.engine_state))
    assert ended.state == "succeeded"
    assert ended.reason == ""
    assert changes == [
        "PIPELINE_STATE_PENDING",
        "PIPELINE_STATE_RUNNING",
        "PIPELINE_STATE_SUCCEEDED",
    ]
    run = admin.get_run(ended.id)
    assert {s.instance: (s.state, s.cached) for s in run.steps} == {
        "load": ("cached", True),
        "fit": ("succeeded", False),
    }
    assert run.finished_at is not None
    assert run.finished_at.isoformat() == "2026-12-07T10:02:00+00:00"
    (deleted,) = vertex.requests("DELETE", rf"/v1/projects/{PROJECT}/secrets/.+")
    assert deleted.path.endswith(f"/secrets/funade-run-{run.id}")
    # the run's token is revoked with its end
    with admin.with_key(submitted.token) as reporter, pytest.raises(AuthenticationError):
        reporter.get_run(run.id)


def test_a_failed_job_fails_the_run_with_the_engines_error(
    submitted: Submitted, vertex: StandIn, engine: VertexEngine, admin: Client
) -> None:
    name = submitted.job.rsplit("/", 1)[-1]
    vertex.route(
        "GET",
        rf"{JOBS}/{name}",
        Script({"state": "PIPELINE_STATE_FAILED", "error": {"code": 9, "message": "fit: OOM"},
                "jobDetail": {"taskDetails": [_task("load", "SUCCEEDED"),
                                              _task("fit", "FAILED", "OOMKilled")]}}),
    )  # fmt: skip
    ended = _follow(admin, submitted, engine)
    assert ended.state == "failed"
    assert ended.reason == f"the vertex job {submitted.job} ended PIPELINE_STATE_FAILED: fit: OOM"
    run = admin.get_run(ended.id)
    fit = next(s for s in run.steps if s.instance == "fit")
    assert (fit.state, fit.error) == ("failed", "OOMKilled")


def test_cancelling_the_run_cancels_the_job(
    submitted: Submitted, vertex: StandIn, engine: VertexEngine, admin: Client
) -> None:
    name = submitted.job.rsplit("/", 1)[-1]
    cancelled: list[Seen] = []

    def job(seen: Seen) -> tuple[int, Any]:
        if cancelled:
            return 200, {"state": "PIPELINE_STATE_CANCELLED"}
        return 200, {"state": "PIPELINE_STATE_RUNNING"}

    def cancel(seen: Seen) -> tuple[int, Any]:
        cancelled.append(seen)
        return 200, {}

    vertex.route("GET", rf"{JOBS}/{name}", job)
    vertex.route("POST", rf"{JOBS}/{name}:cancel", cancel)
    assert submitted.run is not None
    admin.cancel_run(submitted.run.id)
    ended = _follow(admin, submitted, engine)
    assert len(cancelled) == 1
    assert ended.state == "cancelled"
    assert "PIPELINE_STATE_CANCELLED" in ended.reason


def test_an_unreachable_engine_loses_the_run(submitted: Submitted, admin: Client) -> None:
    with httpx.Client() as http:
        gone = VertexEngine(
            PROJECT,
            REGION,
            http=http,
            endpoint="http://127.0.0.1:9",
            secrets_endpoint="http://127.0.0.1:9",
        )
        clock = itertools.count(0, 100)
        ended = _follow(admin, submitted, gone, unreachable_after=300, clock=lambda: next(clock))
    assert ended.state == "lost"
    assert ended.reason.startswith(
        f"the vertex job {submitted.job} could not be followed for 300 s; last: Vertex AI could "
        "not be reached (GET http://127.0.0.1:9/v1/"
    )


def test_a_refused_job_fails_the_run_and_deletes_its_secret(
    write_pipeline: Callable[..., str], engine: VertexEngine, vertex: StandIn, admin: Client,
    app_url: str,
) -> None:  # fmt: skip
    vertex.route(
        "POST",
        JOBS,
        (403, {"error": {"code": 403, "message": "aiplatform.pipelineJobs.create denied"}}),
    )
    options = SubmitOptions(pipeline_root=ROOT, funade_url=app_url)
    with pytest.raises(EngineError) as caught:
        submit(engine, write_pipeline(FLOW), options, admin)
    assert str(caught.value).startswith(
        f"Vertex AI refused POST {vertex.url}{JOBS} with 403: aiplatform.pipelineJobs.create denied"
    )
    (run,) = admin.list_runs().items
    assert run.state == "failed"
    assert run.reason.startswith("it could not be submitted to vertex: Vertex AI refused")
    assert vertex.requests("DELETE", rf"/v1/projects/{PROJECT}/secrets/funade-run-{run.id}")


def test_another_runs_token_cannot_report_this_one(
    submitted: Submitted,
    write_pipeline: Callable[..., str],
    engine: VertexEngine,
    admin: Client,
    app_url: str,
) -> None:
    from funade.pipelines.schemas import RunEventsIn, RunUpdate

    options = SubmitOptions(pipeline_root=ROOT, funade_url=app_url)
    # not other.py: a pipeline file stays in sys.modules under its stem, and
    # test_cache_property's project has a module `other`
    other = submit(engine, write_pipeline(FLOW, name="another_flow.py"), options, admin)
    assert submitted.run is not None
    with admin.with_key(other.token) as reporter, pytest.raises(PermissionDeniedError) as caught:
        reporter.report_run(submitted.run.id, RunEventsIn(run=RunUpdate(state="succeeded")))
    assert str(caught.value).startswith(f"Run {submitted.run.id + 1}'s token may report only")
    assert admin.get_run(submitted.run.id).state == "running"


def test_kubeflow_runs_are_followed_and_their_secret_is_a_kubernetes_secret(
    write_pipeline: Callable[..., str], admin: Client, app_url: str
) -> None:
    with standin() as api, httpx.Client() as http:
        api.route(
            "GET", "/apis/v2beta1/experiments", (200, {"experiments": [{"experiment_id": "e"}]})
        )
        api.route("POST", "/apis/v2beta1/runs", (200, {"run_id": "r-1"}))
        api.route("POST", "/api/v1/namespaces/team-a/secrets", (201, {}))
        api.route("DELETE", "/api/v1/namespaces/team-a/secrets/.+", (200, {}))
        api.route("GET", "/apis/v2beta1/runs/r-1", Script(
            {"state": "RUNNING", "run_details": {"task_details": [
                {"display_name": "load", "state": "RUNNING"}]}},
            {"state": "SUCCEEDED", "finished_at": "2026-12-07T10:05:00Z", "run_details": {
                "task_details": [{"display_name": "load", "state": "SUCCEEDED"},
                                 {"display_name": "fit", "state": "SUCCEEDED"},
                                 {"display_name": "root", "state": "SUCCEEDED"}]}},
        ))  # fmt: skip
        engine = KubeflowEngine(api.url, http=http, namespace="team-a", kube=(api.url, http))
        options = SubmitOptions(funade_url=app_url)
        done = submit(engine, write_pipeline(FLOW), options, admin)
        assert done.run is not None
        (secret,) = api.requests("POST", "/api/v1/namespaces/team-a/secrets")
        assert secret.body["metadata"]["name"] == f"funade-run-{done.run.id}"
        assert secret.body["stringData"] == {"token": done.token}
        (created,) = api.requests("POST", "/apis/v2beta1/runs")
        assert done.token not in str(created.body)
        ended = _follow(admin, done, engine)
        assert api.requests("DELETE", f"/api/v1/namespaces/team-a/secrets/funade-run-{done.run.id}")
    assert ended.state == "succeeded"
    assert sorted(s.instance for s in admin.get_run(ended.id).steps) == ["fit", "load"]
    assert done.run.runner["job"] == "r-1"


def test_fan_out_tasks_are_indexed_steps() -> None:
    from funade.pipelines.submit import RemoteTask
    from funade.pipelines.submitfollow import step_records

    spec = PipelineSpec.model_validate(
        {"name": "p", "nodes": [
            {"id": "score_all", "function": "m:f", "code_digest": "sha256:" + "0" * 64,
             "inputs": {"x": {"kind": "param", "param": "xs"}}, "map_over": ["x"]}]}
    )  # fmt: skip
    tasks = (RemoteTask("score-all", "succeeded"), RemoteTask("for-loop-1", "running"),
             RemoteTask("score-all", "failed", error="boom"))  # fmt: skip
    records = step_records(spec, tasks)
    assert [(r.instance, r.index, r.state, r.error) for r in records] == [
        ("score_all[0]", 0, "succeeded", ""),
        ("score_all[1]", 1, "failed", "boom"),
    ]


def test_a_remote_run_is_not_resumed_here(
    submitted: Submitted, vertex: StandIn, engine: VertexEngine, admin: Client
) -> None:
    from funade.errors import ConflictError
    from funade.pipelines.runs import resume_run

    name = submitted.job.rsplit("/", 1)[-1]
    vertex.route("GET", rf"{JOBS}/{name}", (200, {"state": "PIPELINE_STATE_FAILED"}))
    ended = _follow(admin, submitted, engine)
    with pytest.raises(ConflictError) as caught:
        resume_run(ended.id, client=admin)
    assert str(caught.value).startswith(
        f"Run {ended.id} ran on vertex ({submitted.job}); it cannot be resumed here."
    )


def test_the_slo_and_notifications_work_as_for_a_local_run(
    write_pipeline: Callable[..., str],
    engine: VertexEngine,
    vertex: StandIn,
    admin: Client,
    app_url: str,
    receiver: Any,
) -> None:
    hooks = [{"url": receiver.url, "kind": "json", "on": ["failure", "success", "slo_breach"]}]
    source = FLOW.replace(
        "@funade.pipeline\n", f"@funade.pipeline(max_duration=30, notify={hooks!r})\n"
    )
    options = SubmitOptions(pipeline_root=ROOT, funade_url=app_url)
    done = submit(engine, write_pipeline(source), options, admin)
    name = done.job.rsplit("/", 1)[-1]
    vertex.route(
        "GET",
        rf"{JOBS}/{name}",
        Script(
            {"state": "PIPELINE_STATE_RUNNING"},
            {"state": "PIPELINE_STATE_RUNNING"},
            {"state": "PIPELINE_STATE_RUNNING"},
            {"state": "PIPELINE_STATE_FAILED", "error": {"message": "fit: OOM"}},
        ),
    )
    clock = itertools.count(0, 20)  # 20 s between polls: past 30 s at the second
    ended = _follow(admin, done, engine, clock=lambda: next(clock))
    assert ended.state == "failed"
    assert admin.get_run(ended.id).slo_breached
    assert [b["event"] for b in receiver.bodies] == ["slo_breach", "failure"]
    breach, failure = receiver.bodies
    assert breach["message"] == "running for 40s, over its 30s limit"
    assert breach["run_id"] == str(ended.id)
    assert failure["message"] == ended.reason
    assert failure["url"].endswith(f"/runs/{ended.id}?project=default")


def _executors(seen: Seen) -> dict[str, Any]:
    executors: dict[str, Any] = seen.body["pipelineSpec"]["deploymentSpec"]["executors"]
    return executors


def test_without_the_step_token_two_runs_send_the_same_containers(
    write_pipeline: Callable[..., str],
    engine: VertexEngine,
    vertex: StandIn,
    admin: Client,
    app_url: str,
) -> None:
    """Vertex's cache key covers the containers' environment: with the run's token (and id)
    two runs' steps differ there; --no-step-token sends the same containers every run."""
    target = write_pipeline(FLOW)
    with_token = SubmitOptions(pipeline_root=ROOT, funade_url=app_url)
    for _ in range(2):
        submit(engine, target, with_token, admin)
    first, second = (_executors(s) for s in vertex.requests("POST", JOBS))
    env = [
        {e["name"]: e["value"] for e in x["exec-fit"]["container"]["env"]} for x in (first, second)
    ]
    assert {k for k in env[0] if env[0][k] != env[1][k]} == {"FUNADE_RUN_ID", "FUNADE_SECRET_REFS"}
    vertex.seen.clear()
    without = replace(with_token, step_token=False)
    runs = [submit(engine, target, without, admin) for _ in range(2)]
    first, second = (_executors(s) for s in vertex.requests("POST", JOBS))
    assert first == second
    assert "FUNADE_API_KEY" not in json.dumps(first)
    assert not vertex.requests("POST", rf"/v1/projects/{PROJECT}/secrets.*")
    assert all(r.run is not None and r.run.state == "running" for r in runs)


def test_what_cannot_compile_records_no_run(
    write_pipeline: Callable[..., str], engine: VertexEngine, admin: Client, app_url: str
) -> None:
    from funade.pipelines.kfpir import KfpCompileError

    source = FLOW.replace(
        "@funade.step\ndef load", '@funade.step(secrets={"A": "env:A"})\ndef load'
    )
    assert source != FLOW
    with pytest.raises(KfpCompileError):
        submit(
            engine,
            write_pipeline(source),
            SubmitOptions(pipeline_root=ROOT, funade_url=app_url),
            admin,
        )
    with pytest.raises(InvalidInputError) as caught:
        submit(engine, write_pipeline(FLOW), SubmitOptions(funade_url=app_url), admin)
    assert caught.value.field == "pipeline-root"
    assert admin.list_runs().items == []


def test_runs_show_names_the_remote_job(
    submitted: Submitted,
    cli: Callable[..., Any],
    app_url: str,
    admin_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)
    assert submitted.run is not None
    result = cli("runs", "show", str(submitted.run.id))
    assert result.code == 0, result.err
    assert f"  on vertex: {submitted.job}  {submitted.console}" in result.out


def test_cancelling_a_kubeflow_run_terminates_it(
    write_pipeline: Callable[..., str], admin: Client, app_url: str
) -> None:
    with standin() as api, httpx.Client() as http:
        api.route(
            "GET", "/apis/v2beta1/experiments", (200, {"experiments": [{"experiment_id": "e"}]})
        )
        api.route("POST", "/apis/v2beta1/runs", (200, {"run_id": "r-2"}))
        api.route("POST", "/api/v1/namespaces/kubeflow/secrets", (201, {}))
        api.route("DELETE", "/api/v1/namespaces/kubeflow/secrets/.+", (404, {"message": "gone"}))
        api.route("POST", "/apis/v2beta1/runs/r-2:terminate", (200, {}))
        api.route(
            "GET",
            "/apis/v2beta1/runs/r-2",
            lambda s: (
                200,
                {"state": "CANCELED" if api.requests("POST", ".+:terminate") else "RUNNING"},
            ),
        )
        engine = KubeflowEngine(api.url, http=http, kube=(api.url, http))
        done = submit(engine, write_pipeline(FLOW), SubmitOptions(funade_url=app_url), admin)
        assert done.run is not None
        admin.cancel_run(done.run.id)
        ended = _follow(admin, done, engine)  # a secret already gone is no error
    assert ended.state == "cancelled"
    assert ended.reason == "the kubeflow job r-2 ended CANCELED"


GOOGLE = {"error": {"code": 403, "message": "Permission denied on secret"}}
KFP = {"error_message": "Invalid input error: bad cron", "code": 3}
KUBERNETES = {"kind": "Status", "message": 'secrets "funade-run-1" already exists'}


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (403, GOOGLE, "Permission denied on secret"),
        (400, KFP, "Invalid input error: bad cron"),
        (409, KUBERNETES, 'secrets "funade-run-1" already exists'),
        (502, ["upstream"], '["upstream"]'),
    ],
)
def test_an_engines_refusal_says_what_the_engine_said(status: int, body: Any, said: str) -> None:
    from funade.pipelines.submit import Request, send

    with standin() as api, httpx.Client() as http:
        api.route("POST", "/x", (status, body))
        with pytest.raises(EngineError) as caught:
            send(http, Request("POST", f"{api.url}/x", {"token": "t0ken"}), "Kubeflow")
    assert str(caught.value) == (
        f"Kubeflow refused POST {api.url}/x with {status}: {said} Fix what the engine names "
        "(permissions, names, quotas), then try again."
    )
    assert "t0ken" not in str(caught.value)


def test_an_answer_that_is_not_a_json_object_is_an_engine_error() -> None:
    from funade.pipelines.submit import Request, send

    with standin() as api, httpx.Client() as http:
        api.route("GET", "/x", (200, ["not", "an", "object"]))
        with pytest.raises(EngineError) as caught:
            send(http, Request("GET", f"{api.url}/x"), "Vertex AI")
    assert str(caught.value).startswith(
        f"Vertex AI answered GET {api.url}/x with something that is not a JSON object."
    )
