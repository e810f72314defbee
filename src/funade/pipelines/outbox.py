"""What a runner has yet to tell the control plane, reported in batches.

Step records and run changes wait in an :class:`Outbox`; the newest record of a step replaces
the one before it, keeping what that one held and the new one does not say again (when the step
started, log lines not yet sent). :meth:`Outbox.send` posts them all in one report
(``POST /api/v1/runs/{id}/events``); when the control plane is away it keeps them, and what came
in meanwhile, for the next report, so nothing is lost and nothing is reported out of order.
"""

from __future__ import annotations

import time
from typing import Any

from funade.errors import FunadeError
from funade.pipelines import logtail
from funade.pipelines.reporting import RunReporter
from funade.pipelines.schemas import RunEventsIn, RunEventsOut, RunOut, RunUpdate, StepRecord

__all__ = ["Outbox"]

_REPORTED_SUCCESS = ("succeeded", "cached")


class Outbox:
    """Reports of one run attempt: step records (the newest per step wins) and run changes."""

    def __init__(self, reporter: RunReporter, run_id: int) -> None:
        self.reporter = reporter
        self.run_id = run_id
        self.steps: dict[str, StepRecord] = {}
        self.run: dict[str, Any] = {}
        """Changes to the run (``RunUpdate`` fields) not yet reported."""
        self.unreported: set[str] = set()
        """Nodes with a success recorded here but not yet reported."""
        self.latest: dict[str, StepRecord] = {}
        """Each step's newest record, which carries its new output to the next report."""
        self.last_report = time.monotonic()
        self.ended: RunOut | None = None
        """The run as stored, from the report that ended it (its token is revoked then)."""

    def __bool__(self) -> bool:
        return bool(self.steps or self.run)

    def put(self, record: StepRecord) -> StepRecord:
        """Queue ``record``, the step's newest; returns it as it will be reported."""
        previous = self.steps.get(record.instance)
        if previous is not None and previous.started_at and record.started_at is None:
            record = record.model_copy(update={"started_at": previous.started_at})
        self.latest[record.instance] = record
        if previous is not None and previous.log and not record.log_digest:
            record = record.model_copy(update={"log": previous.log})  # not yet sent
        self.steps[record.instance] = record
        if record.state in _REPORTED_SUCCESS:
            self.unreported.add(record.node)
        return record

    def add_log(self, instance: str, text: str) -> None:
        """``text`` (whole lines of a running step's output) goes out with the next report, so
        the run's page shows the step's log while it runs."""
        pending = self.steps.get(instance) or self.latest.get(instance)
        if pending is not None:
            self.steps[instance] = pending.model_copy(
                update={"log": logtail.tail(pending.log + text)}
            )

    def send(self) -> RunEventsOut | None:
        """Report everything queued; None if the control plane is away (it stays queued)."""
        self.last_report = time.monotonic()
        steps, run, unreported = self.steps, self.run, self.unreported
        self.steps, self.run, self.unreported = {}, {}, set()
        body = RunEventsIn(steps=list(steps.values()), run=RunUpdate(**run) if run else None)
        try:
            answer = self.reporter.report_run(self.run_id, body)
        except FunadeError:
            # The control plane is away: keep the records for the next report.
            for key, value in steps.items():
                self.steps.setdefault(key, value)
            self.unreported |= unreported
            self.run = run | self.run
            return None
        if answer.run is not None:
            self.ended = answer.run
        return answer
