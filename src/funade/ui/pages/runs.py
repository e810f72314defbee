"""The runs and schedules sections: the project's runs (filtered, paginated), one run (its DAG
drawn from the spec with each step instance's state, the steps table, logs on demand, cancel and
resume, live while it runs) and the project's schedules (pause and resume)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from funade.api.routes import remoteschedules as remote_routes
from funade.api.routes import runs as run_routes
from funade.api.routes import schedules as schedule_routes
from funade.api.schemas import RunOut, ScheduleOut, StepRecord
from funade.pipelines.spec import NodeSpec, PipelineSpec
from funade.pipelines.states import CANCELLABLE, FINISHED, RESUMABLE, RUN_STATES
from funade.ui import reads
from funade.ui.graphs import Graph, Node, layout
from funade.ui.web import Signed, duration, render

router = APIRouter(include_in_schema=False)

PAGE = 50
MAX_INSTANCES = 12
"""A fan-out drawn instance by instance up to this many; above it, one node with a count."""
ROOM = "succeeded · 59 min 59 s"
"""The longest sub line run.js writes into a step's box as the run goes (a state and a time,
or "N of M done"): boxes keep room for it, so a live update never overflows one."""


def _q(text: str) -> str:
    return quote(text, safe="")


# The runs list ----------------------------------------------------------------------------------


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    viewer: Signed,
    pipeline: str | None = None,
    state: str | None = None,
    schedule_id: int | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    project = viewer.project
    page = run_routes.list_runs(
        project,
        viewer.state,
        viewer.principal,
        pipeline=pipeline or None,
        run_state=state or None,
        schedule_id=schedule_id,
        cursor=cursor or None,
        limit=PAGE,
    )
    pipelines = reads.pipelines(viewer, project)
    schedule_name = reads.schedule_name(viewer, project, schedule_id)
    return render(
        viewer,
        "runs.html",
        request=viewer.request,
        section="runs",
        title="Runs",
        runs=page.items,
        next_cursor=page.next_cursor,
        pipelines=pipelines,
        states=RUN_STATES,
        pipeline=pipeline or "",
        state=state or "",
        schedule_id=schedule_id,
        schedule_name=schedule_name,
        filtered=bool(pipeline or state or schedule_id is not None),
        first_page=not cursor,
    )


# One run ----------------------------------------------------------------------------------------


@dataclass
class StepRow:
    """A row of the steps table: a recorded step instance, or a step not recorded yet."""

    instance: str
    node: str
    state: str
    attempt: int = 0
    cached: bool = False
    error: str = ""
    has_log: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    placeholder: bool = False
    """A step the runner has not reported yet (a fan-out: before its instances exist)."""
    fanout: bool = False

    @property
    def duration(self) -> float | None:
        return _seconds(self.started_at, self.finished_at)


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    end = finished or datetime.now(UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return max(0.0, (end - started).total_seconds())


def _row(step: StepRecord) -> StepRow:
    return StepRow(
        instance=step.instance,
        node=step.node,
        state=step.state,
        attempt=step.attempt,
        cached=step.cached,
        error=step.error,
        has_log=bool(step.log_digest) or step.state == "running",  # running: its output so far
        started_at=step.started_at,
        finished_at=step.finished_at,
    )


def _spec_of(run: RunOut) -> PipelineSpec | None:
    if not run.spec or not run.spec.get("nodes"):
        return None
    try:
        return PipelineSpec.model_validate(run.spec)
    except ValidationError:
        return None


def _instances(run: RunOut, spec: PipelineSpec | None) -> dict[str, list[StepRecord]]:
    """Node id → its recorded instances (fan-out order), nodes in the spec's order."""
    by_node: dict[str, list[StepRecord]] = {}
    if spec is not None:
        for node in spec.nodes:
            by_node[node.id] = []
    for step in run.steps:
        by_node.setdefault(step.node, []).append(step)
    for steps in by_node.values():
        steps.sort(key=lambda s: (s.index if s.index is not None else -1, s.instance))
    return by_node


def step_rows(run: RunOut, spec: PipelineSpec | None) -> list[StepRow]:
    rows: list[StepRow] = []
    mapped = {n.id for n in spec.nodes if n.map_over} if spec is not None else set()
    for node_id, steps in _instances(run, spec).items():
        if steps:
            rows += [_row(s) for s in steps]
        else:
            rows.append(
                StepRow(
                    instance=node_id,
                    node=node_id,
                    state="pending",
                    placeholder=True,
                    fanout=node_id in mapped,
                )
            )
    return rows


def summary_state(states: list[str]) -> str:
    """One state for a fan-out drawn as one node (run.js has the same rule)."""
    if not states:
        return "pending"
    if len(set(states)) == 1:
        return states[0]
    for state in ("failed", "running", "pending", "cancelled", "upstream_failed"):
        if state in states:
            return "running" if state == "pending" else state
    return "succeeded"


def _words(state: str) -> str:
    return state.replace("_", " ")


def _node_for(step: StepRecord | None, gid: str, label: str, anchor: str) -> Node:
    state = step.state if step is not None else "pending"
    cached = bool(step and (step.cached or step.state == "cached"))
    sub = _words(state)
    took = _seconds(step.started_at, step.finished_at) if step is not None else None
    if took is not None and not cached:
        sub += f" · {duration(took)}"
    return Node(
        id=gid,
        label=label,
        sub=sub,
        css=f"state-{state}" + (" cached" if cached else ""),
        href=f"#step-{anchor}",
        title=f"{label}: {sub}" + (" (from the cache)" if cached and state != "cached" else ""),
        room=ROOM,
    )


def run_graph(run: RunOut, spec: PipelineSpec | None) -> Graph:
    """The DAG: one node per step instance (a large fan-out as one node with a count), edges
    from each step's bindings, conditions and ``after``."""
    graph = Graph()
    by_node = _instances(run, spec)
    ids: dict[str, list[str]] = {}
    specs: dict[str, NodeSpec] = {n.id: n for n in spec.nodes} if spec is not None else {}
    for node_id, steps in by_node.items():
        mapped = bool(specs.get(node_id) and specs[node_id].map_over) or any(
            s.index is not None for s in steps
        )
        if not steps:
            label = f"{node_id} [fan-out]" if mapped else node_id
            graph.add(_node_for(None, node_id, label, node_id))
            ids[node_id] = [node_id]
        elif mapped and len(steps) > MAX_INSTANCES:
            states = [s.state for s in steps]
            state = summary_state(states)
            done = sum(1 for s in states if s in ("succeeded", "cached"))
            sub = f"{done} of {len(steps)} done"
            graph.add(
                Node(
                    id=node_id,
                    label=f"{node_id} ({len(steps)} instances)",
                    sub=sub,
                    css=f"state-{state}",
                    href=f"#step-{steps[0].instance}",
                    title=f"{node_id}: {sub}, {_words(state)}",
                    room=ROOM,
                )
            )
            ids[node_id] = [node_id]
        else:
            for step in steps:
                graph.add(_node_for(step, step.instance, step.instance, step.instance))
            ids[node_id] = [s.instance for s in steps]
    for node_id, node in specs.items():
        targets = ids.get(node_id, [])
        for upstream in node.upstream():
            sources = ids.get(upstream, [])
            pairwise = (
                len(sources) == len(targets) > 1
                and node.map_over
                and all(
                    node.inputs[name].kind == "collect" and node.inputs[name].node == upstream
                    for name in node.map_over
                    if name in node.inputs
                )
            )
            if pairwise:
                for source, target in zip(sources, targets, strict=True):
                    graph.link(source, target)
            else:
                for source in sources:
                    for target in targets:
                        graph.link(source, target)
    return layout(graph)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(viewer: Signed, run_id: int) -> HTMLResponse:
    run = run_routes.get_run(run_id, viewer.state, viewer.principal, spec=True)
    spec = _spec_of(run)
    return render(
        viewer,
        "run.html",
        request=viewer.request,
        section="runs",
        title=f"Run #{run.id} · {run.pipeline}",
        run=run,
        spec=spec,
        graph=run_graph(run, spec),
        steps=step_rows(run, spec),
        finished=run.state in FINISHED,
        states={"finished": FINISHED, "resumable": RESUMABLE, "cancellable": CANCELLABLE},
        max_duration=spec.max_duration if spec is not None else None,
        registered=reads.registered(viewer, run.project, run.id),
        schedule_name=reads.schedule_name(viewer, run.project, run.schedule_id),
        can_cancel=viewer.can("write"),
        can_resume=viewer.can_run_code(run.project),
        cancellable=run.state in CANCELLABLE and not run.cancel_requested,
        resumable=run.state in RESUMABLE,
        home="?project=" + _q(run.project),
    )


# Schedules --------------------------------------------------------------------------------------


def next_local(schedule: ScheduleOut) -> str:
    """The next run time in the schedule's own time zone (``2026-12-03 03:00 JST``)."""
    if schedule.paused or not schedule.next_runs:
        return ""
    when = schedule.next_runs[0]
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(ZoneInfo(schedule.timezone)).strftime("%Y-%m-%d %H:%M %Z")
    except (ZoneInfoNotFoundError, ValueError):
        return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def pipeline_of(schedule: ScheduleOut) -> str:
    """The pipeline a schedule runs: the function named after the source's last ``:``."""
    return schedule.source.rpartition(":")[2] or schedule.source


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(viewer: Signed) -> HTMLResponse:
    project = viewer.project
    schedules = schedule_routes.list_schedules(project, viewer.state, viewer.principal)
    ids, last = reads.last_runs(viewer, project)
    return render(
        viewer,
        "schedules.html",
        request=viewer.request,
        section="schedules",
        title="Schedules",
        schedules=schedules,
        remote=remote_routes.list_remote_schedules(project, viewer.state, viewer.principal),
        schedule_ids=ids,
        last_runs=last,
        pipeline_of=pipeline_of,
        next_local=next_local,
        can_change=viewer.can_run_code(project),
        api=f"/api/v1/projects/{_q(project)}/schedules",
    )
