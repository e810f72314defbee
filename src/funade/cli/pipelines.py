"""`funade pipeline run|compile`, `funade runs list|show|logs|cancel|resume`."""

from __future__ import annotations

import gc
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from funade.cli.output import JSON_HELP, PROJECT_HELP, client, console, print_json, table, when

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

    from funade.api.schemas import RunOut, StepRecord
    from funade.pipelines.spec import PipelineSpec

app = typer.Typer(help="Training pipelines: run one here.", no_args_is_help=True)
runs_app = typer.Typer(
    help="Pipeline runs: list, show, logs, cancel, resume.", no_args_is_help=True
)

_STYLE = {
    "pending": "dim",
    "running": "bold cyan",
    "succeeded": "green",
    "cached": "green",
    "failed": "bold red",
    "upstream_failed": "red",
    "skipped": "yellow",
    "cancelled": "magenta",
}


def _duration(record: StepRecord) -> str:
    if record.started_at is None:
        return ""
    end = record.finished_at or datetime.now(UTC)
    return f"{(end - record.started_at).total_seconds():.2f}s"


def _note(record: StepRecord) -> str:
    if record.cached:
        return "cache hit"
    if record.error:
        return record.error if len(record.error) <= 90 else record.error[:87] + "..."
    return ""


_ATTENTION = ("running", "failed", "upstream_failed", "cancelled")
"""What the live table shows first when not every step fits on the screen."""


class LiveDisplay:
    """The steps of a run as a table that updates in place, with their logs streamed above.

    On a terminal the table is built when rich's refresh thread draws it (four times a second)
    and no taller than the screen: the running and failed steps, then the latest finished,
    and a line counting the rest by state; the whole table is printed once the run ends.
    Recording a step only stores it (a chain of 100 steps built a 100-row table per record, on
    the runner's thread, between one step and the next)."""

    def __init__(self, *, logs: bool = True) -> None:
        self.logs = logs
        self.records: dict[str, StepRecord] = {}
        self.order: list[str] = []
        self.title = ""
        self.live: Live | None = None
        self.final = False

    def started(self, run: RunOut, spec: PipelineSpec) -> None:
        self.title = f"Run {run.id} of {spec.name}" + (
            f" (attempt {run.attempt})" if run.attempt > 1 else ""
        )
        self.order = [n.id for n in spec.nodes]
        for step in run.steps:
            self.records[step.instance] = step
        if console.is_terminal:
            from rich.live import Live

            self.live = Live(self, console=console, refresh_per_second=4, transient=False)
            self.live.start()
        else:
            console.print(self.title)

    def step(self, record: StepRecord) -> None:
        previous = self.records.get(record.instance)
        self.records[record.instance] = record
        if self.live is None and (previous is None or previous.state != record.state):
            note = _note(record)
            console.print(
                f"  {record.instance}: {record.state}" + (f" ({note})" if note else ""),
                markup=False,
            )

    def log(self, instance: str, line: str) -> None:
        if self.logs:
            console.print(
                f"[dim]{escape(instance)} |[/] {escape(line)}", highlight=False, soft_wrap=True
            )

    def stop(self) -> None:
        if self.live is not None:
            self.final = True  # the last drawing: every step
            self.live.stop()
            self.live = None

    def __rich__(self) -> Table:
        """What rich's live refresh draws."""
        return self._table(None if self.final else max(5, console.size.height - 8))

    def _table(self, limit: int | None = None) -> Table:
        """The steps in the pipeline's order; with ``limit``, at most that many rows."""
        from rich.table import Table

        grid = Table(title=self.title, title_justify="left", header_style="bold")
        for column in ("step", "state", "attempt", "time", "note"):
            grid.add_column(column)
        position = {n: i for i, n in enumerate(self.order)}
        records = list(self.records.values())  # (one step: the runner's thread adds records)
        rows, left_out = _fit(records, limit)
        rows.sort(key=lambda r: (position.get(r.node, 0), r.index or 0))
        for record in rows:
            grid.add_row(
                escape(record.instance),
                f"[{_STYLE.get(record.state, '')}]{record.state}[/]",
                str(record.attempt or ""),
                _duration(record),
                escape(_note(record)),
            )
        if left_out:
            counts: dict[str, int] = {}
            for record in left_out:
                counts[record.state] = counts.get(record.state, 0) + 1
            grid.add_row(
                f"… {len(left_out)} more",
                ", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
                "",
                "",
                "",
            )
        return grid


def _fit(records: list[StepRecord], limit: int | None) -> tuple[list[StepRecord], list[StepRecord]]:
    """The rows to show (at most ``limit``, one of them left for the count of the others): the
    steps that need attention, then the most recently finished; and the ones left out."""
    if limit is None or len(records) <= limit:
        return list(records), []
    room = max(1, limit - 1)
    first = [r for r in records if r.state in _ATTENTION]
    rest = sorted(
        (r for r in records if r.state not in _ATTENTION),
        key=lambda r: r.finished_at or r.started_at or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    shown = (first + rest)[:room]
    kept = {id(r) for r in shown}
    return shown, [r for r in records if id(r) not in kept]


def _finished(run: RunOut) -> None:
    style = "green" if run.state == "succeeded" else "bold red"
    cached = sum(1 for s in run.steps if s.cached)
    took = f" in {run.duration_seconds:.2f}s" if run.duration_seconds is not None else ""
    console.print(
        f"Run {run.id} [{style}]{run.state}[/]{took}"
        + (f" ({cached} of {len(run.steps)} steps from the cache)" if cached else "")
    )
    if run.reason:
        console.print(f"  {run.reason}")
    from funade.pipelines.states import RESUMABLE

    if run.state in RESUMABLE:
        console.print(f"  Fix the cause, then: funade runs resume {run.id}", style="dim")


def _end(result: RunOut, *, json_out: bool) -> None:
    """Print how the run ended; exit 1 unless it succeeded."""
    if json_out:
        print_json(result)
    else:
        _finished(result)
    if result.state != "succeeded":
        raise typer.Exit(1)


def run(
    target: Annotated[str, typer.Argument(help="The pipeline: train.py:training or pkg.mod:fn.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
    ] = None,
    env: Annotated[
        str | None, typer.Option(help="Environment section of the config file (dev, stg, prd).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step; neither read nor write the cache.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Run every step and write the cache anew.")
    ] = False,
    require_clean: Annotated[
        bool,
        typer.Option(
            "--require-clean", help="Refuse to run from a git tree with uncommitted changes."
        ),
    ] = False,
    logs: Annotated[bool, typer.Option(help="Stream the steps' logs.")] = True,
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Run a pipeline here, showing its steps live; exits 1 if the run fails."""
    from funade.pipelines.params import parse_assignments
    from funade.pipelines.runs import run_pipeline

    text = parse_assignments(param or [])
    display = LiveDisplay(logs=logs and not json_out)
    with client(project) as api:
        try:
            result = run_pipeline(
                target,
                text_params=text,
                env=env,
                use_cache=not no_cache,
                refresh_cache=refresh,
                client=api,
                observer=display if not json_out else None,
                require_clean=require_clean,
            )
        finally:
            display.stop()
    _end(result, json_out=json_out)


def compile_pipeline(
    target: Annotated[str, typer.Argument(help="The pipeline: train.py:training or pkg.mod:fn.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The file to write (pipeline.yaml).")
    ],
    engine: Annotated[
        str, typer.Option("--target", help="The engine to compile for: kfp (KFP v2 / Vertex AI).")
    ] = "kfp",
    env: Annotated[
        str | None, typer.Option(help="Environment section of the config file (dev, stg, prd).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="The runtime image the steps run in (default: funade's, see docs/kfp.md)."
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Switch the engine's caching off for every step.")
    ] = False,
    components: Annotated[
        str,
        typer.Option(
            help="container: each step a container running funade pipeline step; python: a "
            "lightweight Python component (what kfp.local's SubprocessRunner runs)."
        ),
    ] = "container",
) -> None:
    """Compile a pipeline for another engine: KFP v2 IR YAML that KFP and Vertex AI run."""
    from funade.errors import InvalidInputError
    from funade.pipelines.kfpir import DEFAULT_IMAGE, compile_kfp
    from funade.pipelines.loader import load_pipeline

    if engine != "kfp":
        raise InvalidInputError(
            f"--target {engine!r} is not an engine funade compiles for.",
            field="target",
            value=engine,
            fix="Use --target kfp (Kubeflow Pipelines v2 and Vertex AI Pipelines).",
        )
    # No cyclic collections while the pipeline's file imports its libraries and compiles: their
    # passes over the growing heap find next to nothing, and took 0.15 s of the example's 1 s
    # (benchmarks/kfp/RESULTS.md). Reference counting still frees what is not in a cycle.
    collecting = gc.isenabled()
    gc.disable()
    try:
        pipeline = load_pipeline(target)
        text = compile_kfp(
            pipeline,
            target=target,
            env=env,
            image=image or DEFAULT_IMAGE,
            cache=not no_cache,
            components=components,
        )
    finally:
        if collecting:
            gc.enable()
    output.write_text(text)
    console.print(f"wrote {escape(str(output))} ({len(text.splitlines())} lines, KFP v2 IR)")


def step(
    executor_input: Annotated[
        str, typer.Option("--executor-input", help="KFP's executor input ({{$}}), as JSON.")
    ],
    pipeline: Annotated[str, typer.Option(help="The pipeline file: train.py:training.")],
    function: Annotated[str, typer.Option(help="The step's module:qualname.")],
    code_digest: Annotated[str, typer.Option(help="The step's code digest when compiled.")],
    step_id: Annotated[str, typer.Option("--step", help="The step's id in the pipeline.")] = "",
    cache_version: Annotated[
        str, typer.Option(help="The step's cache_version (part of KFP's cache key).")
    ] = "",
    job: Annotated[
        str,
        typer.Option(help="A scheduled run's job name (the engine fills it in at run time)."),
    ] = "",
) -> None:
    """Run one step inside a KFP container (what compiled components run; see docs/kfp.md)."""
    import json
    import os
    import tempfile

    from funade.errors import InvalidInputError
    from funade.pipelines.kfpstep import run_kfp_step
    from funade.pipelines.scheduletoken import TOKENS_ENV
    from funade.pipelines.vertexrefs import SECRET_REFS_ENV

    if os.environ.get(SECRET_REFS_ENV):  # on Vertex AI: Secret Manager references (submit)
        from funade.pipelines.submitvertex import google_session
        from funade.pipelines.vertexrefs import resolve, secret_manager_fetch

        with google_session() as http:
            os.environ.update(resolve(os.environ, secret_manager_fetch(http)))
    if os.environ.get(TOKENS_ENV):  # a scheduled run: wait for the follower to write its token
        os.environ.update(_schedule_token(job))

    try:
        given = json.loads(executor_input)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"--executor-input is not JSON ({exc.msg} at {exc.pos}).",
            field="executor-input",
            value=executor_input[:80],
            fix="Pass KFP's executor input placeholder, '{{$}}'.",
        ) from None
    if job and isinstance(given, dict):  # the job's name is the schedule's input, not the step's
        from funade.pipelines.scheduletoken import JOB_INPUT

        values = (given.get("inputs") or {}).get("parameterValues")
        if isinstance(values, dict):
            values.pop(JOB_INPUT, None)
    with tempfile.TemporaryDirectory(prefix="funade-step-") as work:
        run_kfp_step(
            given,
            pipeline=pipeline,
            function=function,
            code_digest=code_digest,
            work_dir=Path(work),
        )
    console.print(f"step {escape(step_id or function)} done")


def _schedule_token(job: str) -> dict[str, str]:
    """``FUNADE_API_KEY`` and ``FUNADE_RUN_ID`` of a scheduled run's step, once ``funade
    pipeline follow`` has written them into the per-schedule secret."""
    import os

    from funade.pipelines.scheduletoken import TOKENS_ENV, resolve_schedule_token

    if not os.environ[TOKENS_ENV].startswith("gsm:"):
        return resolve_schedule_token(os.environ, job)
    from funade.pipelines.submitvertex import google_session
    from funade.pipelines.vertexrefs import latest_fetch

    with google_session() as http:
        return resolve_schedule_token(os.environ, job, fetch_gsm=latest_fetch(http))


def start(
    run_id: Annotated[int, typer.Argument(help="A queued run's id.")],
    logs: Annotated[bool, typer.Option(help="Stream the steps' logs.")] = True,
) -> None:
    """Run a run the control plane queued (what its scheduler starts for each tick)."""
    from funade.pipelines.runs import start_queued

    display = LiveDisplay(logs=logs)
    with client() as api:
        try:
            result = start_queued(run_id, client=api, observer=display)
        finally:
            display.stop()
    _end(result, json_out=False)


@runs_app.command("list")
def list_runs(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline's runs.")] = None,
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    limit: Annotated[int, typer.Option(help="How many (newest first).")] = 20,
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Runs, newest first."""
    with client(project) as api:
        page = api.list_runs(pipeline=pipeline, state=state, limit=limit)
    if json_out:
        print_json(page.items)
        return
    table(
        None,
        ("id", "pipeline", "state", "trigger", "env", "started", "took"),
        [
            (
                r.id,
                r.pipeline,
                r.state,
                r.trigger,
                r.env,
                when(r.started_at),
                f"{r.duration_seconds:.1f}s" if r.duration_seconds is not None else None,
            )
            for r in page.items
        ],
    )


def _show(run: RunOut) -> None:
    console.print(
        f"Run [bold]{run.id}[/] of [bold]{run.pipeline}[/] — {run.state}"
        + (f" (attempt {run.attempt})" if run.attempt > 1 else "")
    )
    console.print(f"  source: {run.source}")
    if run.runner.get("engine") in ("vertex", "kubeflow"):  # funade pipeline submit's
        console.print(
            f"  on {run.runner['engine']}: {run.runner.get('job') or '(not created)'}"
            + (f"  {run.runner['console']}" if run.runner.get("console") else ""),
            markup=False,
            soft_wrap=True,
        )
    console.print(f"  params: {run.params}" + (f"  env: {run.env}" if run.env else ""))
    attempts = [a for a in (run.lineage or {}).get("attempts") or [] if isinstance(a, dict)]
    for entry in attempts or [run.lineage or {}]:
        git = entry.get("git") or {}
        if git:
            label = f" (attempt {entry['attempt']})" if len(attempts) > 1 else ""
            console.print(
                f"  git{label}: {str(git.get('commit') or 'no commit')[:12]}"
                + (" (dirty)" if git.get("dirty") else "")
            )
    if run.slo_breached:
        console.print("  [bold red]over its maximum duration (SLO breached)[/]")
    if run.reason:
        console.print(f"  reason: {run.reason}")
    table(
        None,
        ("step", "state", "attempt", "time", "note"),
        [(s.instance, s.state, s.attempt or "", _duration(s), _note(s)) for s in run.steps],
    )


@runs_app.command("show")
def show(
    run_id: Annotated[int, typer.Argument(help="The run's id.")],
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """A run's parameters, state and steps (which were cache hits, which failed and why)."""
    with client() as api:
        result = api.get_run(run_id)
    if json_out:
        print_json(result)
    else:
        _show(result)


@runs_app.command("logs")
def logs(
    run_id: Annotated[int, typer.Argument(help="The run's id.")],
    step: Annotated[str | None, typer.Option(help="Only this step (train, or train[2]).")] = None,
) -> None:
    """The logs of a run's finished steps."""
    with client() as api:
        text = api.run_logs(run_id, step=step)
    sys.stdout.write(text)


@runs_app.command("cancel")
def cancel(run_id: Annotated[int, typer.Argument(help="The run's id.")]) -> None:
    """Stop a run: its runner kills the running steps within about a second."""
    with client() as api:
        result = api.cancel_run(run_id)
        deadline = time.monotonic() + 15
        while result.state == "running" and time.monotonic() < deadline:
            time.sleep(0.3)
            result = api.get_run(run_id)
    console.print(
        f"Run {run_id}: {result.state}"
        + ("" if result.state != "running" else " (cancel requested)")
    )


@runs_app.command("resume")
def resume(
    run_id: Annotated[int, typer.Argument(help="The run's id.")],
    logs: Annotated[bool, typer.Option(help="Stream the steps' logs.")] = True,
    force: Annotated[
        bool, typer.Option(help="Resume although the run's runner on another host may live.")
    ] = False,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="NAME=VALUE (repeatable): a parameter no succeeded step has used yet.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Run again the failed and cancelled steps of a run (with the code as it is now) and what
    depends on them, reusing every output that succeeded."""
    from funade.pipelines.params import parse_assignments
    from funade.pipelines.runs import resume_run

    text = parse_assignments(param or [])
    display = LiveDisplay(logs=logs and not json_out)
    with client() as api:
        try:
            result = resume_run(
                run_id,
                client=api,
                observer=display if not json_out else None,
                force=force,
                text_params=text,
            )
        finally:
            display.stop()
    _end(result, json_out=json_out)
