"""A funade run that follows a job on Vertex AI or Kubeflow: poll the engine, report to funade.

Every ``interval`` seconds the follower reads the remote job (``engine.poll``) and reports to
funade with the run's own token: the steps whose tasks changed (a task named as the step's KFP
task; a fan-out's iterations as ``step[i]`` in the engine's order), and the run's end (its
state mapped by the engine module, the engine's error as the reason). A report is also the
run's heartbeat, so the run stays ``running`` while it is followed and is ``lost`` 60 s after
the follower stops (Ctrl-C, a machine gone), as a local run whose runner stops is.

- ``funade runs cancel`` asks the follower (through the report's answer) to cancel the job on
  the engine; the run ends ``cancelled`` when the engine says the job is.
- An engine that cannot be reached is retried; after ``unreachable_after`` seconds the run ends
  ``lost``, naming the job and the last error. A funade that cannot be reached is retried
  until the job ends.
- The pipeline's ``max_duration`` (its SLO) and ``notify`` webhooks work as for a local run:
  a run still going past its limit is marked ``slo_breached`` and ``slo_breach`` is posted;
  ``success`` and ``failure`` are posted when the job ends (from the machine following it).
- When the run ends the engine's copy of its token (the secret) is deleted; the token itself
  is revoked by funade then.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from funade.durations import format_seconds
from funade.errors import FunadeError
from funade.pipelines import notify
from funade.pipelines.kfpir import kfp_name
from funade.pipelines.reporting import RunReporter
from funade.pipelines.schemas import RunEventsIn, RunOut, RunUpdate, StepRecord
from funade.pipelines.spec import PipelineSpec
from funade.pipelines.submit import EngineError, RemoteState, RemoteTask

__all__ = ["Followed", "RunFollower", "follow", "step_records"]


class Followed(Protocol):
    """What following needs of an engine (``VertexEngine``, ``KubeflowEngine``)."""

    name: str

    def poll(self, job: str) -> RemoteState: ...

    def cancel(self, job: str) -> None: ...

    def forget_token(self, run_id: int | str) -> None: ...


def step_records(spec: PipelineSpec, tasks: tuple[RemoteTask, ...]) -> list[StepRecord]:
    """The remote tasks that are funade steps, as step records (groups and the root left out)."""
    nodes = {kfp_name(n.id): n for n in spec.nodes}
    seen: dict[str, int] = {}
    records = []
    for task in tasks:
        node = nodes.get(task.name)
        if node is None:
            continue
        count = seen[node.id] = seen.get(node.id, -1) + 1
        fanned = bool(node.map_over)
        records.append(
            StepRecord(
                instance=f"{node.id}[{count}]" if fanned else node.id,
                node=node.id,
                index=count if fanned else None,
                state=task.state,
                attempt=1,
                cached=task.state == "cached",
                error=task.error,
                started_at=task.started_at,
                finished_at=task.finished_at,
            )
        )
    return records


def _end_update(remote: RemoteState, engine: str, job: str) -> RunUpdate:
    reason = ""
    if remote.state != "succeeded":
        reason = f"the {engine} job {job} ended {remote.engine_state}" + (
            f": {remote.error}" if remote.error else ""
        )
    return RunUpdate(
        state=remote.state, reason=reason, finished_at=remote.finished_at or datetime.now(UTC)
    )


def over(limit: float | None, elapsed: float) -> bool:
    return limit is not None and elapsed > limit


class RunFollower:
    """One funade run kept in step with one remote job: each :meth:`tick` polls the engine once
    and reports what changed (the loop around it is :func:`follow`, or a schedule's follower
    that keeps several at once)."""

    def __init__(
        self,
        reporter: RunReporter,
        run: RunOut,
        spec: PipelineSpec,
        engine: Followed,
        job: str,
        *,
        unreachable_after: float = 300.0,
        on_change: Callable[[RemoteState], None] | None = None,
        forget_token: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reporter, self.run, self.spec, self.engine, self.job = (
            reporter, run, spec, engine, job
        )  # fmt: skip
        self.unreachable_after, self.on_change = unreachable_after, on_change
        self.forget_token, self.clock = forget_token, clock
        self.sent: dict[str, StepRecord] = {}
        self.last_state = ""
        self.unreachable_since: float | None = None
        self.cancelling = False
        self.hooks = notify.check_webhooks(spec.notify, where=f"pipeline {spec.name!r}, notify")
        self.began, self.slo_reported = clock(), run.slo_breached

    def _tell(self, event: notify.EventKind, message: str, about: RunOut, **extra: float) -> None:
        if self.hooks:
            notify.send(
                self.hooks,
                notify.run_event(
                    event,
                    about,
                    pipeline=self.spec.name,
                    url=notify.run_page(self.reporter, about),
                    max_duration=self.spec.max_duration,
                    message=message,
                    **extra,
                ),
            )

    def _observe(self) -> tuple[RunUpdate | None, list[StepRecord]]:
        """Poll the job: the run's update (None: nothing to say) and the changed steps."""
        engine, job, spec = self.engine, self.job, self.spec
        try:
            remote = engine.poll(job)
        except EngineError as exc:
            now = self.clock()
            since = self.unreachable_since = (
                now if self.unreachable_since is None else self.unreachable_since
            )
            if now - since < self.unreachable_after:
                return None, []
            reason = (
                f"the {engine.name} job {job} could not be followed for "
                f"{round(now - since)} s; last: {exc}"
            )
            return RunUpdate(state="lost", reason=reason, finished_at=datetime.now(UTC)), []
        self.unreachable_since = None
        if remote.engine_state != self.last_state and self.on_change is not None:
            self.on_change(remote)
        self.last_state = remote.engine_state
        steps = [r for r in step_records(spec, remote.tasks) if self.sent.get(r.instance) != r]
        elapsed = self.clock() - self.began
        if remote.state != "running":
            return _end_update(remote, engine.name, job), steps
        if over(spec.max_duration, elapsed) and not self.slo_reported:
            self.slo_reported = True
            limit = format_seconds(spec.max_duration or 0)
            shown = format_seconds(round(elapsed, 1) if elapsed < 60 else round(elapsed))
            self._tell("slo_breach", f"running for {shown}, over its {limit} limit", self.run,
                       elapsed=elapsed)  # fmt: skip
            return RunUpdate(slo_breached=True), steps
        return None, steps

    def tick(self) -> RunOut | None:
        """Poll once and report; the run as it ended, or None while it goes on."""
        update, steps = self._observe()
        try:
            answer = self.reporter.report_run(self.run.id, RunEventsIn(steps=steps, run=update))
        except FunadeError:
            return None  # funade away: the next report says it all again
        self.sent.update((r.instance, r) for r in steps)
        if answer.run is not None:
            if self.forget_token:
                with contextlib.suppress(EngineError):  # revoked anyway: a stale one is dead
                    self.engine.forget_token(self.run.id)
            if answer.run.state in ("failed", "succeeded"):
                ended = answer.run.state
                self._tell(
                    "failure" if ended == "failed" else "success", answer.run.reason, answer.run
                )
            return answer.run
        if answer.cancel_requested and not self.cancelling:
            try:
                self.engine.cancel(self.job)
                self.cancelling = True
            except EngineError:
                pass  # asked again at the next poll
        return None


def follow(
    reporter: RunReporter,
    run: RunOut,
    spec: PipelineSpec,
    engine: Followed,
    job: str,
    *,
    interval: float = 10.0,
    unreachable_after: float = 300.0,
    on_change: Callable[[RemoteState], None] | None = None,
    forget_token: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RunOut:
    """Follow ``job`` until it ends; the funade run as it ended (``forget_token``: delete the
    engine's secret holding the run's token then)."""
    follower = RunFollower(
        reporter,
        run,
        spec,
        engine,
        job,
        unreachable_after=unreachable_after,
        on_change=on_change,
        forget_token=forget_token,
        clock=clock,
    )
    while (ended := follower.tick()) is None:
        sleep(interval)
    return ended
