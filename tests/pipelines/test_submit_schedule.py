"""Following a schedule on Vertex AI or Kubeflow: a real control plane on a free port, a
stand-in of the engine's API that lists the jobs the schedule starts (``ScheduledJobs``), and
the follower that records each as a funade run and follows it. The test moves the engine's
state between the follower's polls (its ``sleep``)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from funade.client import Client
from funade.errors import FunadeError, InvalidInputError, NotFoundError, PermissionDeniedError
from funade.pipelines.submit import EngineError
from funade.pipelines.submitkfp import KubeflowEngine
from funade.pipelines.submitrun import SubmitOptions, submit
from funade.pipelines.submitschedule import FollowedSchedule, follow_schedule
from funade.pipelines.submitvertex import LIST_FIELDS, VertexEngine
from tests.pipelines.scheduled import (
    CRON,
    PARENT,
    PROJECT,
    REGION,
    SCHEDULE,
    Script,
    follow_cli,
    kubeflow_engine,
    kubeflow_for_cli,
    kubeflow_schedules,
    scheduled_jobs,
    submit_schedule_cli,
    vertex_engine,
    vertex_schedules,
)
from tests.pipelines.standin import FLOW as STANDIN_FLOW
from tests.pipelines.standin import ScheduledJobs, StandIn, standin

ROOT = "gs://acme-ml/pipelines"
FLOW = STANDIN_FLOW.format(options="")


def _task(name: str, state: str, error: str = "") -> dict[str, Any]:
    task: dict[str, Any] = {"taskName": name, "state": state, "startTime": "2026-12-07T03:00:00Z"}
    if error:
        task["error"] = {"message": error}
    return task


@pytest.fixture
def vertex() -> Iterator[StandIn]:
    with standin() as api:
        vertex_schedules(api)  # and the per-schedule secret the follower writes tokens to
        yield api


@pytest.fixture
def engine(vertex: StandIn) -> Iterator[VertexEngine]:
    with httpx.Client() as http:
        yield vertex_engine(vertex, http)


def _schedule(
    engine: VertexEngine, vertex: StandIn, target: str, admin: Client, app_url: str
) -> ScheduledJobs:
    """Create the schedule with `submit --schedule`, as the stand-in then serves it."""
    options = SubmitOptions(pipeline_root=ROOT, funade_url=app_url, schedule=CRON)
    made = submit(engine, target, options, admin)
    assert (made.run, made.job) == (None, SCHEDULE)
    return scheduled_jobs(vertex, "vertex")


@pytest.fixture
def scheduled(
    write_pipeline: Callable[..., str],
    engine: VertexEngine,
    vertex: StandIn,
    admin: Client,
    app_url: str,
) -> tuple[str, ScheduledJobs]:
    """The pipeline file (FLOW) and its schedule, made with `submit --schedule`."""
    target = write_pipeline(FLOW)
    return target, _schedule(engine, vertex, target, admin, app_url)


def _follow(engine: Any, target: str, name: str, admin: Client, **kwargs: Any) -> FollowedSchedule:
    return follow_schedule(engine, target, name, admin, interval=0, **kwargs)


def test_each_run_the_schedule_starts_is_recorded_and_followed(
    scheduled: tuple[str, ScheduledJobs], engine: VertexEngine, vertex: StandIn, admin: Client
) -> None:
    target, jobs = scheduled
    old = jobs.start("flow-old", "PIPELINE_STATE_SUCCEEDED")  # ended before: history
    jobs.jobs[old]["createTime"] = "2026-01-01T03:00:00Z"
    first = jobs.start("flow-1", "PIPELINE_STATE_RUNNING", params={"rows": 20})
    second = f"{PARENT}/pipelineJobs/flow-2"
    recorded: list[tuple[int, str]] = []
    script = Script(
        lambda: jobs.move(first, "PIPELINE_STATE_RUNNING", jobDetail={"taskDetails": [
            _task("load", "SUCCEEDED"), _task("fit", "RUNNING")]}),
        lambda: jobs.move(first, "PIPELINE_STATE_SUCCEEDED", endTime="2026-12-07T03:05:00Z",
                          jobDetail={"taskDetails": [_task("load", "SUCCEEDED"),
                                                     _task("fit", "SUCCEEDED")]}),
        lambda: jobs.start("flow-2", "PIPELINE_STATE_RUNNING"),
        lambda: jobs.move(second, "PIPELINE_STATE_FAILED", error={"message": "fit: OOM"}),
        lambda: setattr(jobs, "gone", True),  # deleted on the engine
    )  # fmt: skip
    done = _follow(
        engine,
        target,
        "7",
        admin,
        sleep=script,
        on_record=lambda r, j: recorded.append((r.id, j.name)),
    )
    assert done.reason == f"schedule {SCHEDULE} no longer exists on vertex"
    assert not done.lost
    assert [j for _, j in recorded] == [first, second]
    assert [(r.state, r.runner["job"]) for r in done.runs] == [
        ("succeeded", first),
        ("failed", second),
    ]
    assert done.runs[1].reason == f"the vertex job {second} ended PIPELINE_STATE_FAILED: fit: OOM"
    run = admin.get_run(recorded[0][0])
    assert run.trigger == "schedule"
    assert run.runner["schedule"] == SCHEDULE
    assert run.runner["console"].startswith(
        f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/pipelines/runs/flow-1"
    )
    # the job's values over the defaults: from the job's GET (the listing leaves them out)
    assert run.params == {"rows": 20, "c": 0.5}
    assert {s.instance: s.state for s in run.steps} == {"load": "succeeded", "fit": "succeeded"}
    assert run.finished_at is not None
    assert run.finished_at.isoformat() == "2026-12-07T03:05:00+00:00"
    # the history before the follower started is not recorded; the listing asked the engine
    assert {r.runner["job"] for r in admin.list_runs().items} == {first, second}
    (listed, *_) = vertex.requests("GET", f"/v1/{PARENT}/pipelineJobs")
    assert listed.query == {
        "filter": f"schedule_name={SCHEDULE}",
        "readMask": LIST_FIELDS,
        "orderBy": "create_time desc",
        "pageSize": "50",
    }


@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
def test_the_listing_asks_what_aiplatforms_list_jobs_asks(
    engine: VertexEngine, vertex: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google-cloud-aiplatform's own `PipelineJobSchedule.list_jobs()` sends its filter and
    fields to the same stand-in; funade's listing adds only the order and page size."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    jobs = ScheduledJobs(vertex, "vertex", SCHEDULE, {})
    jobs.start("flow-1", "PIPELINE_STATE_RUNNING")
    monkeypatch.setattr(initializer, "global_config", initializer._Config())
    initializer.global_config.init(
        project=PROJECT,
        location=REGION,
        credentials=AnonymousCredentials(),
        api_endpoint=vertex.url,
        api_transport="rest",
    )
    theirs = aiplatform.PipelineJobSchedule.get(SCHEDULE).list_jobs()
    ours = engine.list_jobs(engine.get_schedule(SCHEDULE))
    assert [j.resource_name for j in theirs] == [j.name for j in ours]
    sdk, funade_ = vertex.requests("GET", f"/v1/{PARENT}/pipelineJobs")
    assert {k: sdk.query[k] for k in ("filter", "readMask")} == {
        "filter": funade_.query["filter"],
        "readMask": funade_.query["readMask"],
    }


def test_following_again_records_no_job_twice(
    scheduled: tuple[str, ScheduledJobs], engine: VertexEngine, vertex: StandIn, admin: Client
) -> None:
    target, jobs = scheduled
    job = jobs.start("flow-1", "PIPELINE_STATE_RUNNING")
    # the first follower stops with the job still going (its run is then lost)
    with pytest.raises(KeyboardInterrupt):
        _follow(engine, target, SCHEDULE, admin, sleep=Script(_interrupt))
    (run,) = admin.list_runs().items
    jobs.move(job, "PIPELINE_STATE_SUCCEEDED")
    jobs.state = "COMPLETED"
    done = _follow(engine, target, SCHEDULE, admin, sleep=Script())
    assert done.runs == []
    assert [r.id for r in admin.list_runs().items] == [run.id]


def _interrupt() -> None:
    raise KeyboardInterrupt


def test_the_slo_and_notifications_hold_for_scheduled_runs(
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
    target = write_pipeline(source)
    jobs = _schedule(engine, vertex, target, admin, app_url)
    job = jobs.start("flow-1", "PIPELINE_STATE_RUNNING")
    clock = itertools.count(0, 20)
    script = Script(
        lambda: None,
        lambda: None,
        lambda: jobs.move(job, "PIPELINE_STATE_SUCCEEDED"),
        lambda: setattr(jobs, "state", "COMPLETED"),  # the schedule's end time passed
    )
    done = _follow(engine, target, SCHEDULE, admin, sleep=script, clock=lambda: next(clock))
    assert done.reason == f"schedule {SCHEDULE} is COMPLETED on vertex"
    (run,) = done.runs
    assert run.state == "succeeded"
    assert admin.get_run(run.id).slo_breached
    assert [b["event"] for b in receiver.bodies] == ["slo_breach", "success"]
    assert receiver.bodies[0]["run_id"] == str(run.id)


def test_cancelling_a_scheduled_run_cancels_its_job(
    scheduled: tuple[str, ScheduledJobs], engine: VertexEngine, vertex: StandIn, admin: Client
) -> None:
    target, jobs = scheduled
    job = jobs.start("flow-1", "PIPELINE_STATE_RUNNING")
    vertex.route(
        "POST",
        f"/v1/{job}:cancel",
        lambda s: (200, jobs.move(job, "PIPELINE_STATE_CANCELLED") and {}),
    )
    runs: list[int] = []

    def cancel() -> None:
        admin.cancel_run(runs[0])
        jobs.gone = True

    done = _follow(engine, target, SCHEDULE, admin, sleep=Script(cancel, lambda: None),
                   on_record=lambda r, _j: runs.append(r.id))  # fmt: skip
    assert [r.state for r in done.runs] == ["cancelled"]
    assert vertex.requests("POST", f"/v1/{job}:cancel")


def test_a_schedule_that_does_not_exist_is_named(
    write_pipeline: Callable[..., str], engine: VertexEngine, admin: Client
) -> None:
    with pytest.raises(NotFoundError) as caught:
        _follow(engine, write_pipeline(FLOW), "404", admin)
    assert str(caught.value).startswith(
        f"Schedule {PARENT}/schedules/404 does not exist on vertex."
    )
    assert caught.value.field == "schedule"
    assert admin.list_runs().items == []


def test_a_bad_schedule_name_is_refused_before_anything_is_sent(
    write_pipeline: Callable[..., str], engine: VertexEngine, vertex: StandIn, admin: Client
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _follow(engine, write_pipeline(FLOW), "projects/p/locations/us-east1/schedules/1", admin)
    assert str(caught.value).startswith(
        "'projects/p/locations/us-east1/schedules/1' is not a Vertex AI schedule in region "
        f"{REGION}."
    )
    assert caught.value.field == "schedule"
    assert vertex.seen == []


def test_other_code_than_the_schedule_runs_is_refused(
    write_pipeline: Callable[..., str],
    engine: VertexEngine,
    vertex: StandIn,
    admin: Client,
    app_url: str,
) -> None:
    target = write_pipeline(FLOW)
    _schedule(engine, vertex, target, admin, app_url)
    changed = write_pipeline(FLOW.replace("sum(xs) * c", "sum(xs) * c * 2"))
    assert changed == target
    with pytest.raises(InvalidInputError) as caught:
        _follow(engine, changed, SCHEDULE, admin)
    assert str(caught.value).startswith("Step 'fit''s code here (sha256:")
    assert f"is not the code schedule {SCHEDULE} runs" in str(caught.value)
    # a module name no other test's project uses: a pipeline file stays in sys.modules under
    # its stem, and test_cache_property's project has a module `other`
    other = write_pipeline(
        FLOW.replace("def flow(", "def other("), name="another_flow.py", pipeline="other"
    )
    with pytest.raises(InvalidInputError) as caught:
        _follow(engine, other, SCHEDULE, admin)
    assert str(caught.value).startswith(f"Schedule {SCHEDULE} runs pipeline 'flow', not 'other'.")
    assert admin.list_runs().items == []


def test_an_unreachable_engine_loses_the_runs_and_stops(
    scheduled: tuple[str, ScheduledJobs], engine: VertexEngine, vertex: StandIn, admin: Client
) -> None:
    target, jobs = scheduled
    jobs.start("flow-1", "PIPELINE_STATE_RUNNING")
    clock = itertools.count(0, 100)

    def unplug() -> None:
        engine.endpoint = "http://127.0.0.1:9"

    done = _follow(engine, target, SCHEDULE, admin, sleep=Script(unplug, *[lambda: None] * 5),
                   unreachable_after=300, clock=lambda: next(clock))  # fmt: skip
    assert done.lost
    assert re.match(
        rf"schedule {SCHEDULE} could not be followed for [0-9]+ s; last: Vertex AI could not "
        rf"be reached \(GET http://127.0.0.1:9/v1/{SCHEDULE}\): ConnectError",
        done.reason,
    )
    (run,) = done.runs
    assert run.state == "lost"
    assert "could not be followed for" in run.reason


def test_an_engine_unreachable_at_the_start_is_an_error(
    write_pipeline: Callable[..., str], admin: Client
) -> None:
    with httpx.Client() as http:
        gone = VertexEngine(PROJECT, REGION, http=http, endpoint="http://127.0.0.1:9")
        with pytest.raises(EngineError) as caught:
            _follow(gone, write_pipeline(FLOW), "7", admin)
    assert str(caught.value).startswith(
        f"Vertex AI could not be reached (GET http://127.0.0.1:9/v1/{SCHEDULE})"
    )


def test_kubeflow_recurring_runs_are_followed(
    write_pipeline: Callable[..., str], admin: Client, app_url: str
) -> None:
    target = write_pipeline(FLOW)
    with standin() as api, httpx.Client() as http:
        kubeflow_schedules(api)
        engine = kubeflow_engine(api, http)
        options = SubmitOptions(funade_url=app_url, schedule=CRON)
        assert submit(engine, target, options, admin).job == "rr-1"
        jobs = scheduled_jobs(api, "kubeflow")
        mine = jobs.start("r-1", "RUNNING")
        other = jobs.start("r-other", "RUNNING")
        jobs.jobs[other]["recurring_run_id"] = "rr-2"  # another schedule's, same experiment
        script = Script(
            lambda: jobs.move(mine, "SUCCEEDED", run_details={"task_details": [
                {"display_name": "load", "state": "SUCCEEDED"},
                {"display_name": "fit", "state": "CACHED"}]}),
            lambda: setattr(jobs, "gone", True),
        )  # fmt: skip
        done = _follow(engine, target, "rr-1", admin, sleep=script)
        (listed, *_) = api.requests("GET", "/apis/v2beta1/runs")
    assert listed.query == {"experiment_id": "e", "sort_by": "created_at desc", "page_size": "50"}
    assert done.reason == "schedule rr-1 no longer exists on kubeflow"
    (run,) = done.runs
    assert (run.state, run.runner["job"], run.runner["schedule"]) == ("succeeded", "r-1", "rr-1")
    steps = admin.get_run(run.id).steps
    assert {s.instance: (s.state, s.cached) for s in steps} == {
        "load": ("succeeded", False),
        "fit": ("cached", True),
    }


def test_a_bad_recurring_run_id_is_refused(
    write_pipeline: Callable[..., str], admin: Client
) -> None:
    with httpx.Client() as http:
        engine = KubeflowEngine("http://127.0.0.1:9", http=http)
        with pytest.raises(InvalidInputError) as caught:
            _follow(engine, write_pipeline(FLOW), "../runs/x", admin)
    assert str(caught.value).startswith("'../runs/x' is not a Kubeflow recurring run's id.")


def test_submit_schedule_prints_how_to_follow_it(
    write_pipeline: Callable[..., str], cli: Callable[..., Any], app_url: str, admin_key: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
) -> None:  # fmt: skip
    target = write_pipeline(FLOW)
    with kubeflow_for_cli(monkeypatch, tmp_path, app_url, admin_key) as (api, _):
        result = submit_schedule_cli(cli, target, api)
    assert result.code == 0, result.err
    assert (
        f"funade pipeline follow {target} rr-1 --target kubeflow --host {api.url}\n" in result.out
    )


def test_follow_refuses_a_bad_interval(
    write_pipeline: Callable[..., str], cli: Callable[..., Any]
) -> None:
    result = cli("pipeline", "follow", write_pipeline(FLOW), "7", "--target", "vertex",
                 "--project", PROJECT, "--region", REGION, "--interval", "0")  # fmt: skip
    assert result.code == 2
    assert "--interval 0.0 is out of range." in result.err


def test_a_new_job_the_engine_fails_to_show_is_recorded_at_the_next_poll(
    scheduled: tuple[str, ScheduledJobs], engine: VertexEngine, vertex: StandIn, admin: Client
) -> None:
    target, jobs = scheduled
    job = jobs.start("flow-1", "PIPELINE_STATE_RUNNING")
    answers = iter([(503, {"error": {"code": 503, "message": "try again"}})])
    vertex.route("GET", f"/v1/{job}", lambda seen: next(answers, None) or jobs._job(seen))
    seen_runs: list[int] = []

    def check_none_yet() -> None:
        seen_runs.append(len(admin.list_runs().items))
        jobs.move(job, "PIPELINE_STATE_SUCCEEDED")
        jobs.state = "COMPLETED"

    done = _follow(engine, target, SCHEDULE, admin, sleep=Script(check_none_yet, lambda: None))
    assert seen_runs == [0]  # not recorded while its parameters could not be read
    assert [(r.state, r.runner["job"]) for r in done.runs] == [("succeeded", job)]


def test_the_follow_command_records_and_follows_until_the_schedule_is_gone(
    write_pipeline: Callable[..., str],
    cli: Callable[..., Any],
    app_url: str,
    admin_key: str,
    admin: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    target = write_pipeline(FLOW)
    with kubeflow_for_cli(monkeypatch, tmp_path, app_url, admin_key) as (api, stores):
        made = submit_schedule_cli(cli, target, api)
        assert made.code == 0, made.err
        jobs = scheduled_jobs(api, "kubeflow")
        job = jobs.start("r-1", "RUNNING")

        def run(seen: Any) -> tuple[int, Any]:
            if len(api.requests("GET", "/apis/v2beta1/runs/r-1")) > 2:  # its GET, one poll
                jobs.move(job, "SUCCEEDED")
                jobs.gone = True
            return jobs._job(seen)

        api.route("GET", "/apis/v2beta1/runs/r-1", run)
        result = follow_cli(cli, target, api)
    assert result.code == 0, result.err
    (recorded,) = admin.list_runs().items
    assert f"Run {recorded.id} follows kubeflow job r-1 (RUNNING)" in result.out
    assert f"Run {recorded.id} succeeded" in result.out
    assert "Stopped: schedule rr-1 no longer exists on kubeflow; 1 run(s) followed." in result.out
    assert (recorded.state, recorded.trigger) == ("succeeded", "schedule")
    assert stores.k8s == {}  # the per-schedule Secret deleted with the schedule
    # funade's record of the schedule: made by submit, updated by follow
    (record,) = admin.list_remote_schedules()
    assert (record.target, record.engine_id, record.cron, record.pipeline) == (
        "kubeflow", "rr-1", "0 3 * * *", "flow",
    )  # fmt: skip
    assert record.console == f"{api.url}/#/recurringrun/details/rr-1"
    assert record.last_job == "r-1"
    assert record.last_seen_at is not None
    assert record.ended_reason == "schedule rr-1 no longer exists on kubeflow"
    listed = cli("pipeline", "schedules")
    assert listed.code == 0, listed.err
    assert "kubeflow" in listed.out
    assert "rr-1" in listed.out
    as_json = cli("pipeline", "schedules", "--json")
    assert [r["engine_id"] for r in json.loads(as_json.out)] == ["rr-1"]
    (written, *_) = api.requests("PATCH", "/api/v1/namespaces/kubeflow/secrets/.+")
    assert written.headers["authorization"] == "Bearer kube-token"


class _Away:
    """The control plane as the follower reaches it, away for its first `create_run` (as the
    client says when it cannot connect); everything else is the real client's."""

    def __init__(self, client: Client) -> None:
        self.client, self.failed = client, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def create_run(self, run: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise FunadeError("Could not reach the funade API at http://x: ConnectError.")
        return self.client.create_run(run)


def test_a_job_funade_could_not_record_is_recorded_at_the_next_poll(
    scheduled: tuple[str, ScheduledJobs], engine: VertexEngine, admin: Client
) -> None:
    target, jobs = scheduled
    job = jobs.start("flow-1", "PIPELINE_STATE_RUNNING")

    def end() -> None:
        jobs.move(job, "PIPELINE_STATE_SUCCEEDED")
        jobs.gone = True

    away = _Away(admin)
    done = follow_schedule(engine, target, SCHEDULE, away, interval=0,  # type: ignore[arg-type]
                           sleep=Script(end, lambda: None))  # fmt: skip
    assert away.failed
    assert [(r.state, r.runner["job"]) for r in done.runs] == [("succeeded", job)]


def test_a_key_that_may_not_record_runs_is_refused(
    scheduled: tuple[str, ScheduledJobs], engine: VertexEngine, key_for: Any
) -> None:
    target, jobs = scheduled
    jobs.start("flow-1", "PIPELINE_STATE_RUNNING")
    reader = key_for(["read"])
    with pytest.raises(PermissionDeniedError) as caught:
        follow_schedule(engine, target, SCHEDULE, reader, interval=0, sleep=Script())
    assert "this needs 'write'" in str(caught.value)
    assert reader.list_runs().items == []
