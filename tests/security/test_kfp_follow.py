"""`funade pipeline follow`: hostile schedule names go into no URL, a scheduled run's steps hold
no funade credential, and each followed run's token reports only its own run."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from funade.client import Client
from funade.errors import InvalidInputError, PermissionDeniedError
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
from tests.pipelines.standin import FLOW, ScheduledJobs, StandIn, standin

PARENT = "projects/acme-ml/locations/europe-west4"
SCHEDULE = f"{PARENT}/schedules/7"

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


def test_scheduled_runs_steps_get_no_token_and_each_run_reports_only_itself(
    api: StandIn, write_pipeline: Callable[..., str], admin: Client, app_url: str
) -> None:
    target = write_pipeline(FLOW.format(options=""))
    api.route("POST", f"/v1/{PARENT}/schedules", (200, {"name": SCHEDULE}))
    with httpx.Client() as http:
        engine = VertexEngine("acme-ml", "europe-west4", http=http, endpoint=api.url)
        options = SubmitOptions(pipeline_root="gs://b/p", funade_url=app_url, schedule="0 3 * * *")
        submit(engine, target, options, admin)
        (sent,) = api.requests("POST", f"/v1/{PARENT}/schedules")
        # the schedule's containers hold no token, no reference to one and no run id
        assert "FUNADE_API_KEY" not in str(sent.body)
        assert "FUNADE_SECRET_REFS" not in str(sent.body)
        assert not api.requests("POST", r"/v1/projects/acme-ml/secrets.*")
        jobs = ScheduledJobs(api, "vertex", SCHEDULE, sent.body)
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
