"""A wrong command line gets the command's usage and one `error:` line, exit 2, never a
traceback: every command (enumerated from the typer app) with an unknown option, and every command
that takes arguments without them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import typer

from funade.cli import app
from funade.serving.config import DEFAULT_MAX_BATCH_SIZE
from tests.cli.conftest import Result


def _commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in sorted(subcommands.items()):
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(typer.main.get_command(app), ()))
NEEDS_ARGUMENTS = {
    path: [p.name for p in command.params if p.param_type_name == "argument" and p.required]
    for path, command in COMMANDS.items()
}


def test_the_commands_are_all_there() -> None:
    """The enumeration finds every command (a typer restructuring that hid them from it would
    make the tests below pass on nothing)."""
    assert len(COMMANDS) >= 40
    for path in [("up",), ("models", "list"), ("pipeline", "run"), ("runs", "resume")]:
        assert path in COMMANDS
    assert NEEDS_ARGUMENTS[("models", "show")] == ["ref"]
    assert NEEDS_ARGUMENTS[("models", "list")] == []


def _assert_usage_error(result: Result, path: tuple[str, ...], error: str) -> None:
    words = " ".join(("funade", *path))
    assert result.code == 2, (path, result)
    assert result.out == ""
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"Usage: {words} "), lines
    assert lines[1].startswith(f"error: {error}"), lines
    assert lines[1].endswith(f". Run `{words} --help` for its arguments and options."), lines


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_an_unknown_option_prints_the_usage_and_one_line(
    path: tuple[str, ...], cli: Callable[..., Result]
) -> None:
    result = cli(*path, "--qxzv")
    _assert_usage_error(result, path, "No such option: --qxzv")


@pytest.mark.parametrize(
    "path", sorted(p for p, names in NEEDS_ARGUMENTS.items() if names), ids=" ".join
)
def test_a_missing_argument_prints_the_usage_and_one_line(
    path: tuple[str, ...], cli: Callable[..., Result]
) -> None:
    result = cli(*path)
    _assert_usage_error(result, path, f"Missing argument '{NEEDS_ARGUMENTS[path][0]}'")


@pytest.mark.parametrize(
    ("args", "path", "error"),
    [
        (["nope"], (), "No such command 'nope'"),
        (
            ["models", "list", "--limit"],
            ("models", "list"),
            "Option '--limit' requires an argument",
        ),
        (
            ["runs", "show", "abc"],
            ("runs", "show"),
            "Invalid value for 'run_id': Input should be a valid integer, unable to parse string "
            "as an integer",
        ),
    ],
)
def test_other_usage_errors(
    args: list[str], path: tuple[str, ...], error: str, cli: Callable[..., Result]
) -> None:
    _assert_usage_error(cli(*args), path, error)


def test_a_group_without_a_command_prints_its_help(cli: Callable[..., Result]) -> None:
    """As click does: the help, exit 2 (no command was given)."""
    result = cli("models")
    assert result.code == 2
    assert "Traceback" not in result.err
    assert "Usage: funade models [OPTIONS] COMMAND" in result.out
    assert "download" in result.out


def test_a_funade_error_is_one_line_however_long(cli: Callable[..., Result]) -> None:
    """Longer than a terminal's 80 columns, with brackets rich would read as markup."""
    result = cli("traffic", "churn", "rev-3=[bold]x[/bold]")
    assert result.code == 2
    assert result.out == ""
    assert result.err.splitlines() == [
        "error: 'rev-3=[bold]x[/bold]' is not a revision weight. Write REVISION=PERCENT, e.g. "
        "`funade traffic churn rev-3=90 rev-4=10`."
    ]


def test_serve_help_states_the_serving_default(cli: Callable[..., Result]) -> None:
    """`funade serve` reads its batch default when it runs; its help says the same number."""
    from funade.cli.serve import BATCH_HELP

    assert f"default: {DEFAULT_MAX_BATCH_SIZE})" in BATCH_HELP
