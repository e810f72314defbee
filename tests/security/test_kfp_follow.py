"""`funade pipeline follow`: hostile schedule names go into no URL, a scheduled run's steps hold
only a reference to the per-schedule secret (never a token), each job's token travels only to
the secret store and is never printed, a step reads only its own job's entry, and each followed
run's token reports only its own run and is dead once the run ended."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.client import Client
from funade.errors import AuthenticationError, InvalidInputError, PermissionDeniedError
from funade.pipelines.scheduletoken import read_mounted
from funade.pipelines.schemas import RunEventsIn, RunUpdate
from funade.pipelines.submit import (
    check_k8s_name,
    check_region,
    check_service_account,
    check_vertex_project,
)
from funade.pipelines.submitkfp import KubeflowEngine
from funade.pipelines.submitrun import SubmitOptions, submit
from funade.pipelines.submitschedule import follow_schedule
from funade.pipelines.submitvertex import VertexEngine
from tests.pipelines.scheduled import (
    CRON,
    PARENT,
    SCHEDULE,
    follow_cli,
    kubeflow_engine,
    kubeflow_for_cli,
    kubeflow_schedules,
    scheduled_jobs,
    submit_schedule_cli,
    vertex_engine,
    vertex_schedules,
)
from tests.pipelines.standin import FLOW, StandIn, standin

HOSTILE = [
    "../../secrets/x",
    "7?filter=x",
    "7/../../pipelineJobs/other",
    f"{SCHEDULE}/../8",
    "7\n",
    "\uff17",  # a full-width 7: isdigit() but not ASCII
    "",
    "1" * 21,
]


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[[str], str]:
    def write(source: str) -> str:
        path = tmp_path / "code" / "flow.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text("import funade\n" + textwrap.dedent(source))
        return f"{path}:flow"

    return write


@pytest.fixture
def api() -> Iterator[StandIn]:
    with standin() as stand_in:
        yield stand_in


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_vertex_schedule_names_are_refused_before_anything_is_sent(
    name: str, api: StandIn, write_pipeline: Callable[..., str], admin: Client
) -> None:
    with httpx.Client() as http:
        engine = VertexEngine("acme-ml", "europe-west4", http=http, endpoint=api.url)
        with pytest.raises(InvalidInputError) as caught:
            follow_schedule(engine, write_pipeline(FLOW.format(options="")), name, admin)
    assert caught.value.field == "schedule"
    assert str(caught.value).startswith(f"{name!r} is not a Vertex AI schedule")
    assert api.seen == []


@pytest.mark.parametrize("name", [*HOSTILE[:-1], "rr 1", "-rr", "a" * 65])
def test_hostile_recurring_run_ids_are_refused_before_anything_is_sent(
    name: str, api: StandIn, write_pipeline: Callable[..., str], admin: Client
) -> None:
    with httpx.Client() as http:
        engine = KubeflowEngine(api.url, http=http)
        with pytest.raises(InvalidInputError) as caught:
            follow_schedule(engine, write_pipeline(FLOW.format(options="")), name, admin)
    assert str(caught.value).startswith(f"{name!r} is not a Kubeflow recurring run's id.")
    assert api.seen == []


def _token_in(token: str, body: object) -> bool:
    text = json.dumps(body)
    return token in text or base64.b64encode(token.encode()).decode() in text


def test_scheduled_runs_tokens_are_only_in_the_per_schedule_secret_and_each_reports_itself(
    api: StandIn, write_pipeline: Callable[..., str], admin: Client, app_url: str
) -> None:
    """The schedule's containers hold a reference to the per-schedule secret, never a token;
    each job's token travels only in the follower's writes to the secret store (and the
    follower's own reports); a run's token reports only its own run."""
    target = write_pipeline(FLOW.format(options=""))
    stores = vertex_schedules(api)
    with httpx.Client() as http:
        engine = vertex_engine(api, http)
        options = SubmitOptions(pipeline_root="gs://b/p", funade_url=app_url, schedule=CRON)
        submit(engine, target, options, admin)
        jobs = scheduled_jobs(api, "vertex")
        assert "FUNADE_API_KEY" not in str(jobs.body)
        assert "FUNADE_SECRET_REFS" not in str(jobs.body)
        (secret,) = stores.gsm
        assert f"{secret}/versions/latest" in str(jobs.body)
        jobs.start("a", "PIPELINE_STATE_RUNNING")
        jobs.start("b", "PIPELINE_STATE_RUNNING")
        tokens: dict[int, str] = {}
        real_create = admin.create_run

        def create_run(run: object) -> object:
            made = real_create(run)  # type: ignore[arg-type]
            tokens[made.id] = made.token or ""
            return made

        admin.create_run = create_run  # type: ignore[method-assign]
        ended: list[int] = []

        def attack(_seconds: float) -> None:
            first, second = sorted(tokens)
            with admin.with_key(tokens[first]) as reporter:
                with pytest.raises(PermissionDeniedError) as caught:
                    reporter.report_run(second, RunEventsIn(run=RunUpdate(state="succeeded")))
                ended.append(second)
            assert str(caught.value).startswith(f"Run {first}'s token may report only")
            jobs.gone = True
            for name in list(jobs.jobs):
                jobs.move(name, "PIPELINE_STATE_SUCCEEDED")

        done = follow_schedule(engine, target, SCHEDULE, admin, interval=0, sleep=attack)
    assert ended
    assert sorted(r.state for r in done.runs) == ["succeeded", "succeeded"]
    for token in tokens.values():
        holding = {s.path for s in api.seen if _token_in(token, s.body)}
        assert holding == {f"/v1/{secret}:addVersion"}
        for run in done.runs:
            assert token not in admin.get_run(run.id, spec=True).model_dump_json()


def test_the_follow_command_prints_no_token(
    write_pipeline: Callable[..., str],
    cli: Callable[..., Any],
    app_url: str,
    admin_key: str,
    admin: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    target = write_pipeline(FLOW.format(options=""))
    with kubeflow_for_cli(monkeypatch, tmp_path, app_url, admin_key) as (api, stores):
        made = submit_schedule_cli(cli, target, api)
        assert made.code == 0, made.err
        jobs = scheduled_jobs(api, "kubeflow")
        job = jobs.start("r-1", "RUNNING")
        tokens: list[str] = []

        def run(seen: Any) -> tuple[int, Any]:
            ((namespace, secret),) = stores.k8s
            values = stores.k8s_values(namespace, secret)
            if "r-1" in values:
                tokens.append(json.loads(values["r-1"])["token"])
                jobs.move(job, "SUCCEEDED")
                jobs.gone = True
            return jobs._job(seen)

        api.route("GET", "/apis/v2beta1/runs/r-1", run)
        result = follow_cli(cli, target, api)
    assert result.code == 0, result.err
    assert tokens
    for token in tokens:
        assert token not in result.out + result.err + made.out + made.err
    assert stores.k8s == {}


def test_a_step_reads_only_its_own_jobs_entry(tmp_path: Path) -> None:
    """The step opens only its job's key (and `schedule`): another job's entry in the same
    mounted Secret is never read, and a job name cannot point the read elsewhere. (The pod
    could still read the other files of the volume: see docs/security.md.)"""
    (tmp_path / "r-2").write_text(json.dumps({"run": 2, "token": "r-2's token"}))
    (tmp_path / "schedule").write_text("rr-1")
    outside = tmp_path.parent / "outside"
    outside.write_text(json.dumps({"run": 3, "token": "not a job's"}))
    read = read_mounted(tmp_path, "r-1")
    assert read() == (None, "rr-1")
    (tmp_path / "r-1").write_text(json.dumps({"run": 1, "token": "r-1's token"}))
    assert read() == ((1, "r-1's token"), "rr-1")
    for hostile in ("../outside", "schedule", "r-1/../r-2", "..", f"{PARENT}/pipelineJobs/../x"):
        with pytest.raises(InvalidInputError) as caught:
            read_mounted(tmp_path, hostile)
        assert caught.value.field == "job"


def test_a_wrong_or_revoked_token_is_refused_by_funade(
    api: StandIn, write_pipeline: Callable[..., str], admin: Client, app_url: str
) -> None:
    """A token written for a job is dead once its run ended; a made-up one never worked."""
    target = write_pipeline(FLOW.format(options=""))
    stores = kubeflow_schedules(api)
    with httpx.Client() as http:
        engine = kubeflow_engine(api, http)
        submit(engine, target, SubmitOptions(funade_url=app_url, schedule=CRON), admin)
        ((_, secret),) = stores.k8s
        jobs = scheduled_jobs(api, "kubeflow")
        job = jobs.start("r-1", "RUNNING")
        written: list[dict[str, Any]] = []

        def end() -> None:
            written.append(json.loads(stores.k8s_values("kubeflow", secret)["r-1"]))
            with admin.with_key(written[0]["token"]) as live:
                assert live.get_run(written[0]["run"]).id == written[0]["run"]
            jobs.move(job, "SUCCEEDED")
            jobs.gone = True

        follow_schedule(engine, target, "rr-1", admin, interval=0, sleep=lambda _s: end())
    for key in (written[0]["token"], "fnd_run_made_up"):
        with admin.with_key(key) as refused, pytest.raises(AuthenticationError):
            refused.get_run(written[0]["run"])


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (lambda v: check_k8s_name(v, "namespace"), "kubeflow\n"),
        (check_region, "europe-west4\n"),
        (check_vertex_project, "acme-ml\n"),
        (lambda v: check_service_account(v, "kubeflow"), "runner\n"),
        (lambda v: check_service_account(v, "vertex"), "p@acme-ml.iam.gserviceaccount.com\n"),
    ],
)
def test_a_trailing_newline_does_not_pass_a_name_check(
    check: Callable[[str], str], value: str
) -> None:
    """``re.match`` with ``$`` matches before a final newline; the checks match the whole."""
    with pytest.raises(InvalidInputError) as caught:
        check(value)
    assert caught.value.value == value
