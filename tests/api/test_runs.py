"""The pipeline-runs API through the real client: creating and listing runs, the runner's
reports (step records upserted by instance, run changes), the step cache, cancelling, step
logs and who may do what; every refusal by its error type, message and field."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.api.schemas import RunAttemptIn, RunEventsIn, RunIn, RunOut, RunUpdate, StepRecord
from funade.client import Client
from funade.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from funade.pipelines.logtail import LOG_TAIL_CHARS

STEPS = ("train", "fit", "a", "b", "prep", "evaluate", "mine", "stolen", "invented", "spew", "ok")
SPEC = {"name": "p", "nodes": [{"id": n, "function": f"flows:{n}"} for n in STEPS]}
MADE_UP_DIGEST = "sha256:" + "0" * 64

KeyFor = Callable[..., Client]
_TOKENS: dict[tuple[str, int], str] = {}
"""Each run's token (by control plane and run id): what its runner reports with."""


def _new_run(
    client: Client, pipeline: str = "p", *, project: str | None = None, **fields: Any
) -> RunOut:
    run = client.create_run(RunIn(pipeline=pipeline, spec=SPEC, **fields), project=project)
    assert run.token is not None
    _TOKENS[(client.url, run.id)] = run.token
    return run


def _step(instance: str, state: str = "succeeded", **fields: Any) -> StepRecord:
    fields.setdefault("node", instance.split("[")[0])
    return StepRecord(instance=instance, state=state, **fields)


def _report(client: Client, run_id: int, *steps: StepRecord, **run: Any) -> bool:
    """Report as the run's runner does, with its token (or as ``client`` for a run it made
    none for)."""
    update = RunUpdate(**run) if run else None
    token = _TOKENS.get((client.url, run_id))
    reporter = client.with_key(token) if token else client
    try:
        return reporter.report_run(
            run_id, RunEventsIn(steps=list(steps), run=update)
        ).cancel_requested
    finally:
        if reporter is not client:
            reporter.close()


def _token(client: Client, run_id: int) -> str:
    return _TOKENS[(client.url, run_id)]


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _text_blob(client: Client, tmp_path: Path, text: str, **kw: Any) -> str:
    path = tmp_path / f"log-{abs(hash(text))}.txt"
    path.write_text(text)
    return client.upload_artifact(path, **kw).digest


# Creating, listing, reading -------------------------------------------------------------------


def test_create_records_a_running_run_and_audits_it(
    admin: Client, app_url: str, admin_key: str
) -> None:
    body = {
        "pipeline": "p",
        "spec": SPEC,
        "params": {"lr": 0.1},
        "env": "dev",
        "source": "flows.py:p",
        "trigger": "manual",
    }
    response = httpx.post(
        f"{app_url}/api/v1/projects/default/runs", json=body, headers=_headers(admin_key)
    )
    assert response.status_code == 201, response.text
    run = RunOut.model_validate(response.json())
    assert (run.project, run.pipeline, run.source, run.env) == ("default", "p", "flows.py:p", "dev")
    assert run.params == {"lr": 0.1}
    assert (run.state, run.attempt, run.reason) == ("running", 1, "")
    assert run.started_at is not None
    assert run.finished_at is None
    assert run.cancel_requested is False
    assert run.steps == []
    assert run.created_by == admin.whoami().key_id
    assert admin.get_run(run.id, spec=True).spec == SPEC, "the spec is stored as given"
    [event] = admin.audit(action="run.create").items
    assert (event.target, event.project) == (f"p#{run.id}", "default")
    assert event.details == {
        "params": {"lr": 0.1},
        "env": "dev",
        "trigger": "manual",
        "permissions": [],
    }
    assert run.token is not None, "the runner gets the run's token, once"
    assert admin.get_run(run.id).token is None


def test_create_refuses_an_unknown_state(admin: Client) -> None:
    with pytest.raises(InvalidInputError, match="'paused' is not a known state") as info:
        _new_run(admin, state="paused")
    assert (info.value.field, info.value.value) == ("state", "paused")
    assert admin.list_runs().items == [], "nothing was stored"


def test_list_is_newest_first_and_filters_by_pipeline_and_state(admin: Client) -> None:
    first = _new_run(admin, "train")
    second = _new_run(admin, "score")
    third = _new_run(admin, "train")
    _report(admin, first.id, state="failed", reason="boom")
    assert [r.id for r in admin.list_runs().items] == [third.id, second.id, first.id]
    assert [r.id for r in admin.list_runs(pipeline="train").items] == [third.id, first.id]
    assert [r.id for r in admin.list_runs(state="failed").items] == [first.id]
    assert [r.id for r in admin.list_runs(pipeline="score", state="failed").items] == []
    listed = admin.list_runs().items[0]
    assert listed.spec is None


def test_list_pages_with_limit_and_cursor(admin: Client) -> None:
    ids = [_new_run(admin).id for _ in range(5)]
    page = admin.list_runs(limit=2)
    seen = [r.id for r in page.items]
    while page.next_cursor is not None:
        page = admin.list_runs(limit=2, cursor=page.next_cursor)
        seen += [r.id for r in page.items]
    assert seen == ids[::-1]
    assert admin.list_runs(limit=5).next_cursor is None, "no cursor after the last page"


def test_list_refuses_an_unknown_state_filter(admin: Client) -> None:
    with pytest.raises(InvalidInputError, match="state 'done' is not a known state") as info:
        admin.list_runs(state="done")
    assert (info.value.field, info.value.value) == ("state", "done")
    assert "succeeded" in (info.value.fix or "")


def test_get_shows_the_spec_only_when_asked(admin: Client) -> None:
    run = _new_run(admin)
    plain = admin.get_run(run.id)
    assert plain.spec is None
    assert (plain.id, plain.pipeline, plain.state) == (run.id, "p", "running")
    assert admin.get_run(run.id, spec=True).spec == SPEC


def test_an_unknown_run_is_not_found(admin: Client, app_url: str, admin_key: str) -> None:
    for call in (
        lambda: admin.get_run(999),
        lambda: admin.cancel_run(999),
        lambda: admin.run_logs(999),
    ):
        with pytest.raises(NotFoundError, match=r"^Run 999 does not exist\.") as info:
            call()
        assert (info.value.field, info.value.value) == ("run", 999)
    response = httpx.get(f"{app_url}/api/v1/runs/999", headers=_headers(admin_key))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert (error["field"], error["value"]) == ("run", 999)
    assert "funade runs list" in error["fix"]


# Events ---------------------------------------------------------------------------------------


def test_step_records_are_upserted_by_instance(admin: Client) -> None:
    run = _new_run(admin)
    assert _report(admin, run.id, _step("train", "running", attempt=1)) is False
    latest = _step("train", "succeeded", attempt=2, outputs={"model": "m1"}, error="")
    _report(admin, run.id, latest)
    _report(admin, run.id, latest)  # a report sent twice changes nothing
    [step] = admin.get_run(run.id).steps
    assert (step.instance, step.node, step.state, step.attempt) == (
        "train",
        "train",
        "succeeded",
        2,
    )
    assert step.outputs == {"model": "m1"}
    assert step.cache_write is False, "cache_write is an instruction, not stored"


def test_steps_are_ordered_by_position(admin: Client) -> None:
    run = _new_run(admin)
    _report(
        admin,
        run.id,
        _step("evaluate", position=2),
        _step("train[0]", position=0, index=0),
    )
    _report(admin, run.id, _step("train[1]", position=1, index=1))
    steps = admin.get_run(run.id).steps
    assert [(s.instance, s.node, s.index) for s in steps] == [
        ("train[0]", "train", 0),
        ("train[1]", "train", 1),
        ("evaluate", "evaluate", None),
    ]


def test_a_run_update_finishes_the_run(admin: Client) -> None:
    run = _new_run(admin)
    assert run.started_at is not None
    finished = run.started_at + timedelta(seconds=90)
    _report(admin, run.id, state="succeeded", finished_at=finished, reason="all steps succeeded")
    got = admin.get_run(run.id)
    assert (got.state, got.reason) == ("succeeded", "all steps succeeded")
    assert got.finished_at == finished
    assert got.duration_seconds == pytest.approx(90.0)


def test_a_bad_step_state_is_refused_and_nothing_is_stored(
    admin: Client, app_url: str, admin_key: str
) -> None:
    run = _new_run(admin)
    with pytest.raises(InvalidInputError, match="'done' is not a known state") as info:
        _report(admin, run.id, _step("ok"), _step("bad", "done"))
    assert (info.value.field, info.value.value) == ("steps[].state", "done")
    response = httpx.post(
        f"{app_url}/api/v1/runs/{run.id}/events",
        json={"steps": [{"instance": "bad", "node": "bad", "state": "done"}]},
        headers=_headers(_token(admin, run.id)),
    )
    assert response.status_code == 422  # InvalidInputError's status (funade.api.errors)
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field", "value", "fix"}
    assert (error["code"], error["field"], error["value"]) == (
        "invalid_input",
        "steps[].state",
        "done",
    )
    assert "upstream_failed" in error["fix"]
    assert admin.get_run(run.id).steps == [], "the whole report was rolled back"


def test_a_bad_run_state_is_refused(admin: Client, app_url: str, admin_key: str) -> None:
    run = _new_run(admin)
    with pytest.raises(InvalidInputError, match=r"run\.state 'done' is not a known state") as info:
        _report(admin, run.id, state="done")
    assert (info.value.field, info.value.value) == ("run.state", "done")
    response = httpx.post(
        f"{app_url}/api/v1/runs/{run.id}/events",
        json={"run": {"state": "done"}},
        headers=_headers(_token(admin, run.id)),
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "run.state"
    assert admin.get_run(run.id).state == "running"


def test_a_resume_clears_finished_at_reason_and_cancel_request(admin: Client) -> None:
    run = _new_run(admin)
    admin.cancel_run(run.id)
    assert run.started_at is not None
    _report(
        admin,
        run.id,
        state="cancelled",
        reason="cancelled by a user",
        finished_at=run.started_at + timedelta(seconds=5),
    )
    resumed = admin.start_attempt(run.id, RunAttemptIn(spec=SPEC, runner={"pid": 7}))
    assert resumed.token is not None
    assert resumed.token != run.token
    assert (resumed.state, resumed.attempt, resumed.reason) == ("running", 2, "")
    assert resumed.finished_at is None
    assert resumed.cancel_requested is False
    assert resumed.runner == {"pid": 7}
    [event] = admin.audit(action="run.resume").items
    assert event.details == {"attempt": 2}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/runs/{id}/events",
            {"steps": [{"instance": "a", "node": "a", "state": "running", "started_at": "NAIVE"}]},
            "steps.0.started_at",
        ),
        ("/runs/{id}/events", {"run": {"state": "succeeded", "finished_at": "NAIVE"}}, "run"),
        ("/projects/default/runs", {"pipeline": "p", "spec": {}, "scheduled_for": "NAIVE"}, ""),
    ],
    ids=["step.started_at", "run.finished_at", "create.scheduled_for"],
)
def test_a_timestamp_without_a_zone_is_refused_not_a_500(
    admin: Client, app_url: str, admin_key: str, path: str, body: dict[str, Any], field: str
) -> None:
    run = _new_run(admin)
    raw = json.dumps(body).replace('"NAIVE"', '"2024-01-01T00:00:00"')
    key = _token(admin, run.id) if "events" in path else admin_key
    response = httpx.post(
        f"{app_url}/api/v1{path.format(id=run.id)}",
        content=raw,
        headers={**_headers(key), "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"].startswith(field)


# The step cache -------------------------------------------------------------------------------


def test_a_cacheable_success_writes_the_cache(admin: Client) -> None:
    run = _new_run(admin)
    assert admin.cache_lookup("k1") is None
    _report(
        admin, run.id, _step("train", cache_key="k1", cache_write=True, outputs={"model": "m1"})
    )
    entry = admin.cache_lookup("k1")
    assert entry is not None
    assert (entry.key, entry.outputs, entry.run_id, entry.instance) == (
        "k1",
        {"model": "m1"},
        run.id,
        "train",
    )


@pytest.mark.parametrize(
    ("state", "cache_write", "cache_key"),
    [
        ("succeeded", False, "k1"),
        ("failed", True, "k1"),
        ("cached", True, "k1"),
        ("running", True, "k1"),
        ("succeeded", True, ""),
    ],
)
def test_only_a_cacheable_success_with_a_key_writes_the_cache(
    admin: Client, state: str, cache_write: bool, cache_key: str
) -> None:
    run = _new_run(admin)
    _report(
        admin,
        run.id,
        _step("train", state, cache_key=cache_key, cache_write=cache_write, outputs={"m": 1}),
    )
    assert admin.cache_lookup("k1") is None
    assert admin.get_run(run.id).steps[0].state == state, "the step itself is recorded"


def test_a_later_success_overwrites_the_cache_entry(admin: Client) -> None:
    first, second = _new_run(admin), _new_run(admin)
    _report(admin, first.id, _step("train", cache_key="k1", cache_write=True, outputs={"v": 1}))
    _report(admin, second.id, _step("fit", cache_key="k1", cache_write=True, outputs={"v": 2}))
    entry = admin.cache_lookup("k1")
    assert entry is not None
    assert (entry.outputs, entry.run_id, entry.instance) == ({"v": 2}, second.id, "fit")


def test_one_report_with_two_successes_of_one_key_keeps_the_later(admin: Client) -> None:
    run = _new_run(admin)
    _report(
        admin,
        run.id,
        _step("a", cache_key="k1", cache_write=True, outputs={"v": 1}),
        _step("b", cache_key="k1", cache_write=True, outputs={"v": 2}),
    )
    entry = admin.cache_lookup("k1")
    assert entry is not None
    assert (entry.outputs, entry.instance) == ({"v": 2}, "b")


def test_cache_writes_are_checked_against_the_spec_the_run_runs_now(admin: Client) -> None:
    """A queued run's claim brings the spec its runner compiled: from then on the steps it may
    cache are that spec's, also after steps of the first spec were cached (the server keeps a
    run's step names between reports), and a claim that fails changes nothing."""
    run = _new_run(admin, state="queued")  # SPEC: train, evaluate and more
    _report(admin, run.id, _step("train", cache_key="k1", cache_write=True, outputs={"v": 1}))
    claimed = {"name": "p", "nodes": [{"id": "evaluate"}]}
    _report(
        admin,
        run.id,
        _step("evaluate", cache_key="k2", cache_write=True, outputs={"v": 2}),
        state="running",
        from_state="queued",
        spec=claimed,
    )
    with pytest.raises(PermissionDeniedError, match="'train' is not a step of run") as info:
        _report(admin, run.id, _step("train", cache_key="k3", cache_write=True, outputs={"v": 3}))
    assert info.value.field == "steps[].instance"
    with pytest.raises(ConflictError, match="another runner took it first"):
        _report(
            admin,
            run.id,
            state="running",
            from_state="queued",
            spec={"name": "p", "nodes": [{"id": "train"}]},
        )
    _report(admin, run.id, _step("evaluate", cache_key="k4", cache_write=True, outputs={"v": 4}))
    with pytest.raises(PermissionDeniedError, match="'train' is not a step of run"):
        _report(admin, run.id, _step("train", cache_key="k5", cache_write=True, outputs={"v": 5}))
    assert [admin.cache_lookup(k) is not None for k in ("k1", "k2", "k3", "k4", "k5")] == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert admin.get_run(run.id, spec=True).spec == claimed


def test_a_pipelines_cache_comes_at_once_as_its_runs_may_reuse_it(admin: Client) -> None:
    """What a runner asks for before looking up keys one by one: the entries written by runs of
    its pipeline (not of others, nor of other projects), newest first up to ``limit``, and only
    those a run may reuse (an entry from a less trusted run never feeds a more trusted one)."""
    first, second, other = _new_run(admin), _new_run(admin), _new_run(admin, "other")
    _report(admin, first.id, _step("train", cache_key="k1", cache_write=True, outputs={"v": 1}))
    _report(admin, second.id, _step("fit", cache_key="k2", cache_write=True, outputs={"v": 2}))
    _report(admin, other.id, _step("train", cache_key="k3", cache_write=True, outputs={"v": 3}))
    admin.create_project("elsewhere")
    away = _new_run(admin, project="elsewhere")
    _report(admin, away.id, _step("train", cache_key="k4", cache_write=True, outputs={"v": 4}))
    with admin.with_key(_token(admin, second.id)) as runner:
        entries = runner.cache_of_pipeline("p")
        assert sorted(entries) == ["k1", "k2"]
        assert (entries["k1"].outputs, entries["k1"].run_id) == ({"v": 1}, first.id)
        assert list(runner.cache_of_pipeline("p", limit=1)) == ["k2"], "newest first"
        assert runner.cache_of_pipeline("nothing") == {}
        with pytest.raises(InvalidInputError, match="limit 10001 is out of range") as info:
            runner.cache_of_pipeline("p", limit=10_001)
        assert (info.value.field, info.value.value) == ("limit", 10_001)
        with pytest.raises(InvalidInputError, match="`pipeline` is required") as info:
            runner.cache_of_pipeline("")
        assert info.value.field == "pipeline"
        with pytest.raises(NotFoundError, match="'nowhere'"):
            runner.cache_of_pipeline("p", project="nowhere")
    trusted = admin.create_run(RunIn(pipeline="p", spec={**SPEC, "permissions": ["deploy:churn"]}))
    assert trusted.token is not None
    with admin.with_key(trusted.token) as runner:
        assert runner.cache_of_pipeline("p") == {}, "written by runs that could do less"


def test_cache_entries_are_per_project(admin: Client) -> None:
    admin.create_project("other")
    mine = _new_run(admin)
    _report(admin, mine.id, _step("train", cache_key="k1", cache_write=True, outputs={"v": 1}))
    assert admin.cache_lookup("k1", project="other") is None
    theirs = _new_run(admin, project="other")
    assert theirs.project == "other"
    _report(admin, theirs.id, _step("train", cache_key="k1", cache_write=True, outputs={"v": 9}))
    ours, other = admin.cache_lookup("k1"), admin.cache_lookup("k1", project="other")
    assert ours is not None
    assert other is not None
    assert (ours.outputs, ours.run_id) == ({"v": 1}, mine.id), "the other project's write is apart"
    assert (other.outputs, other.run_id) == ({"v": 9}, theirs.id)


# Cancelling -----------------------------------------------------------------------------------


def test_cancel_asks_a_running_runs_runner_to_stop(admin: Client) -> None:
    run = _new_run(admin)
    cancelled = admin.cancel_run(run.id)
    assert cancelled.cancel_requested is True
    assert cancelled.state == "running", "the runner stops its steps and reports the state"
    assert _report(admin, run.id, _step("train", "running")) is True
    [event] = admin.audit(action="run.cancel").items
    assert event.target == f"p#{run.id}"


def test_cancel_of_a_queued_run_cancels_it_at_once(admin: Client) -> None:
    run = _new_run(admin, state="queued")
    assert (run.state, run.started_at, run.duration_seconds) == ("queued", None, None)
    cancelled = admin.cancel_run(run.id)
    assert (cancelled.state, cancelled.reason) == ("cancelled", "cancelled before it started")
    assert cancelled.finished_at is not None
    assert cancelled.cancel_requested is True


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled"])
def test_a_finished_run_cannot_be_cancelled(
    admin: Client, app_url: str, admin_key: str, state: str
) -> None:
    run = _new_run(admin)
    _report(admin, run.id, state=state)
    with pytest.raises(ConflictError, match=f"has already {state}; there is nothing to cancel"):
        admin.cancel_run(run.id)
    response = httpx.post(f"{app_url}/api/v1/runs/{run.id}/cancel", headers=_headers(admin_key))
    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["code"], error["field"], error["value"]) == ("conflict", "run", run.id)
    assert f"funade runs resume {run.id}" in error["fix"]
    assert admin.get_run(run.id).cancel_requested is False
    assert admin.audit(action="run.cancel").items == [], "a refusal is not audited"


# Logs -----------------------------------------------------------------------------------------


def test_logs_of_all_steps_and_of_one(admin: Client, tmp_path: Path) -> None:
    run = _new_run(admin)
    prep = _text_blob(admin, tmp_path, "loading data\n")
    train = _text_blob(admin, tmp_path, "epoch 1 loss 0.5\n")
    _report(
        admin,
        run.id,
        _step("prep", log_digest=prep, position=0),
        _step("train", log_digest=train, position=1),
        _step("evaluate", "running", position=2),
    )
    assert admin.run_logs(run.id) == (
        "==> prep <==\nloading data\n==> train <==\nepoch 1 loss 0.5\n"
    ), "steps without a log are left out"
    assert admin.run_logs(run.id, step="train") == "epoch 1 loss 0.5\n"
    assert admin.run_logs(run.id, step="evaluate") == ""


def test_a_running_steps_log_is_its_output_so_far_until_its_whole_log_is_stored(
    admin: Client, tmp_path: Path
) -> None:
    run = _new_run(admin)
    _report(admin, run.id, _step("train", "running", log="epoch 1\n"))
    assert admin.run_logs(run.id, step="train") == "epoch 1\n"
    _report(admin, run.id, _step("train", "running", log="epoch 2\n"))
    _report(admin, run.id, _step("train", "running"))  # a report with no new output
    assert admin.run_logs(run.id, step="train") == "epoch 1\nepoch 2\n"
    assert admin.run_logs(run.id) == "==> train <==\nepoch 1\nepoch 2\n"
    whole = _text_blob(admin, tmp_path, "epoch 1\nepoch 2\nepoch 3\ndone\n")
    _report(admin, run.id, _step("train", log_digest=whole))
    assert admin.run_logs(run.id, step="train") == "epoch 1\nepoch 2\nepoch 3\ndone\n"


def test_a_running_steps_log_keeps_the_end_of_a_long_output_from_a_line_start(
    admin: Client,
) -> None:
    run = _new_run(admin)
    line = "x" * 99 + "\n"
    for _ in range(3):
        _report(admin, run.id, _step("spew", "running", log=line * (LOG_TAIL_CHARS // 200)))
    _report(admin, run.id, _step("spew", "running", log="the last line\n"))
    kept = admin.run_logs(run.id, step="spew")
    assert LOG_TAIL_CHARS - len(line) < len(kept) <= LOG_TAIL_CHARS
    assert kept.startswith("x" * 99 + "\n")  # whole lines only
    assert kept.endswith(line + "the last line\n")


def test_logs_of_an_unknown_step_are_not_found(admin: Client) -> None:
    run = _new_run(admin)
    _report(admin, run.id, _step("train"))
    with pytest.raises(NotFoundError, match=f"Run {run.id} has no step 'nope'") as info:
        admin.run_logs(run.id, step="nope")
    assert (info.value.field, info.value.value) == ("step", "nope")
    assert f"funade runs show {run.id}" in (info.value.fix or "")


def test_logs_never_serve_a_blob_the_project_did_not_upload(
    admin: Client, tmp_path: Path, app_url: str, admin_key: str
) -> None:
    admin.create_project("other")
    secret = _text_blob(admin, tmp_path, "the other project's secret\n", project="other")
    own = _text_blob(admin, tmp_path, "own log\n")
    run = _new_run(admin)
    _report(
        admin,
        run.id,
        _step("mine", log_digest=own, position=0),
        _step("stolen", log_digest=secret, position=1),
        _step("invented", log_digest=MADE_UP_DIGEST, position=2),
    )
    logs = admin.run_logs(run.id)
    assert logs == "==> mine <==\nown log\n"
    assert admin.run_logs(run.id, step="stolen") == ""
    assert admin.run_logs(run.id, step="invented") == ""
    response = httpx.get(f"{app_url}/api/v1/runs/{run.id}/logs", headers=_headers(admin_key))
    assert response.status_code == 200
    assert "secret" not in response.text


# Who may do what ------------------------------------------------------------------------------


def test_a_read_only_key_can_read_but_not_report_or_cancel(admin: Client, key_for: KeyFor) -> None:
    run = _new_run(admin)
    reader = key_for(["read"])
    assert [r.id for r in reader.list_runs().items] == [run.id]
    assert reader.get_run(run.id).id == run.id
    assert reader.run_logs(run.id) == ""
    with pytest.raises(PermissionDeniedError, match="Only a run's own token may report it"):
        reader.report_run(run.id, RunEventsIn(steps=[_step("train")]))
    with pytest.raises(PermissionDeniedError, match="needs 'write'"):
        reader.cancel_run(run.id)
    with pytest.raises(PermissionDeniedError, match="needs 'write'"):
        _new_run(reader)
    got = admin.get_run(run.id)
    assert (got.steps, got.cancel_requested) == ([], False)


def test_a_writer_key_records_itself_as_the_creator(admin: Client, key_for: KeyFor) -> None:
    writer = key_for(["read", "write"])
    run = _new_run(writer)
    assert run.created_by == writer.whoami().key_id
    assert run.created_by != admin.whoami().key_id


def test_a_key_of_another_project_cannot_see_the_run(admin: Client, key_for: KeyFor) -> None:
    run = _new_run(admin)
    admin.create_project("other")
    stranger = key_for(["read", "write"], project="other")
    for call in (
        lambda: stranger.get_run(run.id),
        lambda: stranger.cancel_run(run.id),
        lambda: stranger.run_logs(run.id),
    ):
        with pytest.raises(NotFoundError, match=rf"^Run {run.id} does not exist\.") as info:
            call()
        assert info.value.field == "run"
    with pytest.raises(NotFoundError, match="Project 'default' does not exist"):
        stranger.list_runs(project="default")
    assert stranger.list_runs().items == []
    assert admin.get_run(run.id).cancel_requested is False


def test_requests_without_a_key_are_refused(admin: Client, app_url: str) -> None:
    run = _new_run(admin)
    for method, path in (
        ("GET", "/api/v1/projects/default/runs"),
        ("POST", "/api/v1/projects/default/runs"),
        ("GET", f"/api/v1/runs/{run.id}"),
        ("POST", f"/api/v1/runs/{run.id}/events"),
        ("POST", f"/api/v1/runs/{run.id}/cancel"),
        ("GET", f"/api/v1/runs/{run.id}/logs"),
        ("GET", "/api/v1/projects/default/pipeline-cache/k1"),
    ):
        response = httpx.request(method, f"{app_url}{path}", json={})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthenticated"
    with (
        Client(url=app_url, api_key="fk_nope", settings=admin.settings) as anonymous,
        pytest.raises(AuthenticationError),
    ):
        anonymous.get_run(run.id)


def test_a_queued_run_is_claimed_by_one_runner_only(admin: Client, app_url: str) -> None:
    """Two runners starting the same queued run (a launcher race): the claim is one conditional
    update, so the second is refused with 409 and nothing of the first's is changed."""
    run = _new_run(admin, state="queued")
    assert _report(admin, run.id, state="running", from_state="queued", runner={"pid": 1}) is False
    with pytest.raises(ConflictError, match="is running, not queued: another runner took it"):
        _report(admin, run.id, state="running", from_state="queued", runner={"pid": 2})
    after = admin.get_run(run.id)
    assert (after.state, after.runner) == ("running", {"pid": 1})
    response = httpx.post(
        f"{app_url}/api/v1/runs/{run.id}/events",
        json={"run": {"state": "running", "from_state": "waiting"}},
        headers=_headers(_token(admin, run.id)),
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["field"], error["value"]) == ("run.from_state", "waiting")
    assert error["message"].startswith("run.from_state 'waiting' is not a known state.")
    assert admin.get_run(run.id).runner == {"pid": 1}


def test_racing_claims_of_a_queued_run_let_exactly_one_through(admin: Client) -> None:
    import concurrent.futures

    run = _new_run(admin, state="queued")

    def claim(pid: int) -> str:
        try:
            _report(admin, run.id, state="running", from_state="queued", runner={"pid": pid})
        except ConflictError:
            return "refused"
        return "claimed"

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(claim, range(8)))
    assert sorted(outcomes) == ["claimed"] + ["refused"] * 7


def test_a_cache_lookup_in_an_unknown_project_is_an_error_not_a_miss(admin: Client) -> None:
    assert admin.cache_lookup("k-none") is None
    with pytest.raises(NotFoundError, match="Project 'nope' does not exist") as info:
        admin.cache_lookup("k-none", project="nope")
    assert info.value.field == "project"


# Runs whose runner died --------------------------------------------------------------------


def test_a_run_whose_runner_stopped_reporting_is_lost_and_its_time_stops(
    admin: Client, database: Any
) -> None:
    from datetime import UTC, datetime

    from funade.pipelines import records
    from funade.store.schema import PipelineRun

    run = _new_run(admin, runner={"host": "box", "pid": 4242})
    now = datetime.now(UTC)
    with database.session() as session:  # as if its runner went quiet ten minutes ago
        row = session.get(PipelineRun, run.id)
        row.started_at = now - timedelta(minutes=15)
        row.last_seen_at = now - timedelta(minutes=10)
    shown = admin.get_run(run.id)
    assert shown.state == "lost"
    assert "stopped reporting; last seen" in shown.reason
    assert shown.duration_seconds == pytest.approx(300, abs=2), "not the ten silent minutes"
    assert [r.id for r in admin.list_runs(state="running").items] == [run.id], "not yet swept"
    with database.session() as session:
        assert records.mark_lost(session) == [run.id]
    assert [r.id for r in admin.list_runs(state="lost").items] == [run.id]
    recorded = admin.get_run(run.id)
    assert recorded.state == "lost"
    assert "its runner (pid 4242 on box) stopped reporting" in recorded.reason
    with pytest.raises(ConflictError, match="is lost \\(its runner stopped reporting\\)"):
        admin.cancel_run(run.id)
    resumed = admin.start_attempt(run.id, RunAttemptIn(spec=SPEC))
    assert (resumed.state, resumed.attempt) == ("running", 2)
    assert resumed.duration_seconds == pytest.approx(300, abs=3), "earlier attempts count once"


def test_a_reporting_runner_keeps_its_run_alive(admin: Client, database: Any) -> None:
    from datetime import UTC, datetime

    from funade.store.schema import PipelineRun

    run = _new_run(admin)
    with database.session() as session:
        row = session.get(PipelineRun, run.id)
        row.last_seen_at = datetime.now(UTC) - timedelta(minutes=10)
    _report(admin, run.id, _step("train", "running"))
    assert admin.get_run(run.id).state == "running"
