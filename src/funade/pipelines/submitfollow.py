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

__all__ = ["Followed", "follow", "step_records"]


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
    sent: dict[str, StepRecord] = {}
    last_state = ""
    unreachable_since: float | None = None
    cancelling = False
    hooks = notify.check_webhooks(spec.notify, where=f"pipeline {spec.name!r}, notify")
    began, slo_reported = clock(), run.slo_breached

    def tell(event: notify.EventKind, message: str, about: RunOut, **extra: float) -> None:
        if hooks:
            notify.send(
                hooks,
                notify.run_event(
                    event,
                    about,
                    pipeline=spec.name,
                    url=notify.run_page(reporter, about),
                    max_duration=spec.max_duration,
                    message=message,
                    **extra,
                ),
            )

    while True:
        update: RunUpdate | None = None
        steps: list[StepRecord] = []
        try:
            remote = engine.poll(job)
        except EngineError as exc:
            now = clock()
            unreachable_since = now if unreachable_since is None else unreachable_since
            if now - unreachable_since >= unreachable_after:
                update = RunUpdate(
                    state="lost",
                    reason=f"the {engine.name} job {job} could not be followed for "
                    f"{round(now - unreachable_since)} s; last: {exc}",
                    finished_at=datetime.now(UTC),
                )
        else:
            unreachable_since = None
            if remote.engine_state != last_state and on_change is not None:
                on_change(remote)
            last_state = remote.engine_state
            steps = [r for r in step_records(spec, remote.tasks) if sent.get(r.instance) != r]
            elapsed = clock() - began
            if remote.state != "running":
                update = _end_update(remote, engine.name, job)
            elif over(spec.max_duration, elapsed) and not slo_reported:
                slo_reported = True
                update = RunUpdate(slo_breached=True)
                limit = format_seconds(spec.max_duration or 0)
                shown = format_seconds(round(elapsed, 1) if elapsed < 60 else round(elapsed))
                tell("slo_breach", f"running for {shown}, over its {limit} limit", run,
                     elapsed=elapsed)  # fmt: skip
        try:
            answer = reporter.report_run(run.id, RunEventsIn(steps=steps, run=update))
        except FunadeError:
            sleep(interval)  # funade away: the next report says it all again
            continue
        sent.update((r.instance, r) for r in steps)
        if answer.run is not None:
            if forget_token:
                with contextlib.suppress(EngineError):  # revoked anyway: a stale one is dead
                    engine.forget_token(run.id)
            if answer.run.state in ("failed", "succeeded"):
                ended = answer.run.state
                tell("failure" if ended == "failed" else "success", answer.run.reason, answer.run)
            return answer.run
        if answer.cancel_requested and not cancelling:
            try:
                engine.cancel(job)
                cancelling = True
            except EngineError:
                pass  # asked again at the next poll
        sleep(interval)
