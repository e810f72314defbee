"""The `funade` command. Commands parse arguments, call the client, and print — nothing more.

Importing this module (what `funade --help` costs) imports typer, rich and the command modules,
which import nothing else at module level: each command imports the client, the settings, the
API's schemas or the pipeline runner when it runs. ``tests/cli/test_imports.py`` guards it.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from funade.cli import (
    audit,
    build,
    db,
    deployments,
    gateway,
    keys,
    lineage,
    manifests,
    models,
    pipelines,
    platform,
    projects,
    runs,
    schedules,
    serve,
    submit,
    up,
)
from funade.cli.output import console_err, error_line
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
pipelines.app.command("compile")(pipelines.compile_pipeline)
pipelines.app.command("step")(pipelines.step)
pipelines.app.command("submit")(submit.submit)
pipelines.app.command("follow")(submit.follow)
pipelines.app.command("schedules")(submit.schedules)
app.add_typer(runs.runs_app, name="runs")
app.add_typer(schedules.app, name="schedule")
app.command("lineage")(lineage.lineage)
app.command("build")(build.build)
app.command("manifests")(manifests.manifests)
app.add_typer(platform.app, name="platform")


def main() -> None:
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(n) comes back as n
        # 130 is Ctrl-C, which is how `funade up` is stopped: a clean stop, exit 0.
        if isinstance(code, int) and code and code != 130:
            sys.exit(code)
    except FunadeError as exc:
        error_line(str(exc))
        sys.exit(2)
    except typer.Abort:
        console_err.print("Aborted.")
        sys.exit(130)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code if isinstance(code, int) else 0)
    except typer.TyperException as exc:  # click's errors (typer vendors click): bad usage
        sys.exit(_usage_error(exc))


def _usage_error(exc: typer.TyperException) -> int:
    """A wrong command line: the command's usage, then one line saying what is wrong and where
    to look (click's report, without a traceback, in funade's ``error:`` form). Returns the exit
    status, 2 as click's."""
    code = int(getattr(exc, "exit_code", 2))
    if type(exc).__name__ == "NoArgsIsHelpError":  # `funade models`: the group's help
        show = getattr(exc, "show", None)
        if callable(show):
            show()
            return code
    ctx: Any = getattr(exc, "ctx", None) or _context_for(sys.argv[1:])
    message = exc.format_message().strip().rstrip(".")
    if ctx is None:
        error_line(f"{message}. Run `funade --help` for the commands.")
        return code
    console_err.print(ctx.get_usage(), markup=False, highlight=False, soft_wrap=True)
    error_line(f"{message}. Run `{ctx.command_path} --help` for its arguments and options.")
    return code


def _context_for(args: list[str]) -> Any:
    """The context of the (sub)command ``args`` name, for an error click raised without one
    (``--limit`` given no value): its usage line and its path."""
    try:
        command: Any = typer.main.get_command(app)
        ctx = command.make_context("funade", [], resilient_parsing=True)
        for word in args:
            sub = command.get_command(ctx, word) if hasattr(command, "get_command") else None
            if sub is None:
                if word.startswith("-"):
                    continue  # an option of the group (`funade --bogus models`)
                break
            command = sub
            ctx = command.make_context(word, [], parent=ctx, resilient_parsing=True)
        return ctx
    except Exception:  # the error line goes out without the usage
        return None
