"""`funade runs list|show|logs|cancel|resume`: the runs recorded on the control plane."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from funade.cli.output import JSON_HELP, PROJECT_HELP, client, console, print_json, table, when
from funade.cli.rundisplay import LiveDisplay, end_run, step_duration, step_note

if TYPE_CHECKING:
    from funade.api.schemas import RunOut

__all__ = ["runs_app"]

runs_app = typer.Typer(
    help="Pipeline runs: list, show, logs, cancel, resume.", no_args_is_help=True
)


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
        [(s.instance, s.state, s.attempt or "", step_duration(s), step_note(s)) for s in run.steps],
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
    end_run(result, json_out=json_out)
