"""The runner's reports (``pipelines/outbox.py``): the newest record of a step wins, one report
carries all that waited, and nothing is lost or reordered while the control plane is away."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from funade.pipelines.logtail import LOG_TAIL_CHARS
from funade.pipelines.outbox import Outbox
from funade.pipelines.schemas import RunEventsOut, StepRecord
from tests.pipelines.fakes import FakeControlPlane, run_out

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def record(instance: str = "a", state: str = "running", **fields: Any) -> StepRecord:
    return StepRecord(instance=instance, node=instance.split("[")[0], state=state, **fields)


@pytest.fixture
def plane(tmp_path: Path) -> FakeControlPlane:
    return FakeControlPlane(tmp_path)


@pytest.fixture
def outbox(plane: FakeControlPlane) -> Outbox:
    return Outbox(plane, run_id=7)


def test_the_newest_record_of_a_step_wins_and_keeps_when_it_started(outbox: Outbox) -> None:
    outbox.put(record(started_at=T0))
    put = outbox.put(record(state="succeeded"))
    assert put.state == "succeeded"
    assert put.started_at == T0
    assert list(outbox.steps) == ["a"]
    assert outbox.unreported == {"a"}


def test_one_report_carries_every_step_and_the_run_and_empties_the_outbox(
    outbox: Outbox, plane: FakeControlPlane
) -> None:
    outbox.run = {"state": "running", "attempt": 1}
    outbox.put(record("a", "succeeded"))
    outbox.put(record("b", "running"))
    assert outbox
    answer = outbox.send()
    assert answer == plane.answer
    [report] = plane.reports
    assert [s.instance for s in report.steps] == ["a", "b"]
    assert report.run is not None
    assert report.run.state == "running"
    assert report.run.attempt == 1
    assert not outbox
    assert outbox.unreported == set()


def test_an_empty_outbox_still_reports_which_is_how_a_runner_learns_of_a_cancel(
    outbox: Outbox, plane: FakeControlPlane
) -> None:
    plane.answer = RunEventsOut(cancel_requested=True)
    answer = outbox.send()
    assert answer is not None
    assert answer.cancel_requested
    assert plane.reports[0].steps == []
    assert plane.reports[0].run is None


def test_while_the_control_plane_is_away_nothing_is_lost_and_newer_news_wins(
    outbox: Outbox, plane: FakeControlPlane
) -> None:
    outbox.run = {"state": "running", "slo_breached": True}
    outbox.put(record("a", "succeeded"))
    outbox.put(record("b", "running"))
    plane.away = True
    assert outbox.send() is None
    assert outbox.unreported == {"a"}
    outbox.put(record("b", "failed", error="boom"))  # news after the failed report
    outbox.run["state"] = "failed"
    plane.away = False
    assert outbox.send() is not None
    report = plane.reports[-1]
    assert {s.instance: s.state for s in report.steps} == {"a": "succeeded", "b": "failed"}
    assert report.run is not None
    assert report.run.state == "failed"
    assert report.run.slo_breached is True
    assert not outbox


def test_a_running_steps_output_goes_out_with_the_next_report(
    outbox: Outbox, plane: FakeControlPlane
) -> None:
    outbox.put(record())
    outbox.add_log("a", "one\n")
    outbox.send()
    outbox.add_log("a", "two\n")  # sent already: appended to the step's latest record
    outbox.put(record(attempt=2))  # a newer record keeps the lines not yet sent
    outbox.send()
    assert [r.steps[0].log for r in plane.reports] == ["one\n", "two\n"]
    outbox.add_log("b", "no record, nowhere to go\n")
    assert "b" not in outbox.steps


def test_a_stored_log_replaces_the_lines_not_yet_sent(outbox: Outbox) -> None:
    outbox.put(record())
    outbox.add_log("a", "line\n")
    done = outbox.put(record(state="succeeded", log_digest="sha256:" + "0" * 64))
    assert done.log == ""


def test_the_log_a_report_carries_is_its_tail(outbox: Outbox) -> None:
    outbox.put(record())
    outbox.add_log("a", "x" * 100 + "\n" + "y" * LOG_TAIL_CHARS + "\n")
    assert len(outbox.steps["a"].log) <= LOG_TAIL_CHARS


def test_the_report_that_ends_the_run_gives_the_run_as_stored(
    outbox: Outbox, plane: FakeControlPlane
) -> None:
    ended = run_out(7, state="succeeded")
    plane.answer = RunEventsOut(cancel_requested=False, run=ended)
    outbox.run = {"state": "succeeded"}
    outbox.send()
    assert outbox.ended == ended
