"""`funade schedule create|list|show|pause|resume|delete`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from funade.cli.output import JSON_HELP, PROJECT_HELP, client, console, print_json, table, when

if TYPE_CHECKING:
    from funade.api.schemas import ScheduleOut

app = typer.Typer(
    help="Cron schedules of pipelines, run by the control plane (`funade up`).",
    no_args_is_help=True,
)


def _show(schedule: ScheduleOut) -> None:
    state = "[yellow]paused[/]" if schedule.paused else "[green]active[/]"
    console.print(
        f"Schedule [bold]{schedule.name}[/] ({state}): {schedule.cron} {schedule.timezone}"
    )
    console.print(
        f"  pipeline: {schedule.source}" + (f"  env: {schedule.env}" if schedule.env else "")
    )
    if schedule.params:
        console.print(f"  params: {schedule.params}")
    console.print(
        f"  misfire: {schedule.misfire}  max concurrent runs: {schedule.max_concurrent}  "
        f"last tick: {when(schedule.last_tick)}"
    )
    for at in schedule.next_runs:
        console.print(f"  next: {when(at)}", style="dim")


@app.command("create")
def create(
    target: Annotated[str, typer.Argument(help="The pipeline: train.py:training or pkg.mod:fn.")],
    cron: Annotated[str, typer.Option(help='Five-field cron, e.g. "0 3 * * *" (03:00 daily).')],
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone of the cron, e.g. Asia/Tokyo.")
    ] = "UTC",
    env: Annotated[str | None, typer.Option(help="Environment of the config file.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Default: the pipeline's name.")] = None,
    misfire: Annotated[
        str, typer.Option(help="After downtime: skip (one run) or catch_up (one per tick).")
    ] = "skip",
    max_concurrent: Annotated[
        int, typer.Option(help="Runs of this schedule at once; a tick over it is skipped.")
    ] = 1,
    paused: Annotated[bool, typer.Option(help="Create it paused.")] = False,
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Schedule a pipeline. It is loaded and its parameters checked here first."""
    from funade.api.schemas import ScheduleIn
    from funade.pipelines.params import parse_assignments
    from funade.pipelines.runs import prepare

    _, source, spec, values = prepare(target, text_params=parse_assignments(param or []), env=env)
    given = set(parse_assignments(param or []))
    with client(project) as api:
        schedule = api.create_schedule(
            ScheduleIn(
                name=name or spec.name,
                source=source,
                cron=cron,
                timezone=tz,
                env=env,
                params={k: v for k, v in values.items() if k in given},
                misfire=misfire,
                max_concurrent=max_concurrent,
                paused=paused,
            )
        )
    if json_out:
        print_json(schedule)
    else:
        _show(schedule)


@app.command("list")
def list_schedules(
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Schedules with their next run times."""
    with client(project) as api:
        rows = api.list_schedules()
    if json_out:
        print_json(rows)
        return
    table(
        None,
        ("name", "cron", "tz", "env", "state", "next run", "last tick"),
        [
            (
                s.name,
                s.cron,
                s.timezone,
                s.env,
                "paused" if s.paused else "active",
                when(s.next_runs[0]) if s.next_runs else None,
                when(s.last_tick),
            )
            for s in rows
        ],
    )


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The schedule.")],
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """A schedule and its next five run times."""
    with client(project) as api:
        schedule = api.get_schedule(name)
    if json_out:
        print_json(schedule)
    else:
        _show(schedule)


@app.command("pause")
def pause(
    name: Annotated[str, typer.Argument(help="The schedule.")],
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
) -> None:
    """Stop starting runs (the ones going on finish)."""
    with client(project) as api:
        _show(api.update_schedule(name, paused=True))


@app.command("resume")
def resume(
    name: Annotated[str, typer.Argument(help="The schedule.")],
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
) -> None:
    """Start runs again from the next tick (ticks missed while paused are not run)."""
    with client(project) as api:
        _show(api.update_schedule(name, paused=False))


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The schedule.")],
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
) -> None:
    """Delete the schedule (its runs stay)."""
    with client(project) as api:
        api.delete_schedule(name)
    console.print(f"Deleted schedule {name}.")
