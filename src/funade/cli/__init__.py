"""The `funade` command. Commands parse arguments, call the client, and print — nothing more."""

from __future__ import annotations

import sys

import typer

from funade.cli import (
    audit,
    db,
    deployments,
    gateway,
    keys,
    lineage,
    models,
    pipelines,
    projects,
    schedules,
    serve,
    up,
)
from funade.cli.output import console_err
from funade.errors import FunadeError

app = typer.Typer(
    name="funade",
    help="Take a model from your laptop to a production web API, and keep it healthy there.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("up")(up.up)
app.command("serve")(serve.serve)
app.command("gateway")(gateway.gateway)
app.add_typer(models.app, name="models")
app.add_typer(keys.app, name="keys")
app.add_typer(projects.app, name="projects")
app.add_typer(db.app, name="db")
app.command("audit")(audit.audit)
app.command("deploy")(deployments.deploy)
app.add_typer(deployments.app, name="deployments")
app.command("traffic")(deployments.traffic)
app.add_typer(deployments.rollout_app, name="rollout")
app.command("rollback")(deployments.rollback)
app.add_typer(pipelines.app, name="pipeline")
pipelines.app.command("run")(pipelines.run)
pipelines.app.command("start")(pipelines.start)
app.add_typer(pipelines.runs_app, name="runs")
app.add_typer(schedules.app, name="schedule")
app.command("lineage")(lineage.lineage)


def main() -> None:
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(n) comes back as n
        # 130 is Ctrl-C, which is how `funade up` is stopped: a clean stop, exit 0.
        if isinstance(code, int) and code and code != 130:
            sys.exit(code)
    except FunadeError as exc:
        console_err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except typer.Abort:
        console_err.print("Aborted.")
        sys.exit(130)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code if isinstance(code, int) else 0)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
