"""The live table of `funade pipeline run`: no taller than the terminal while the run goes (the
steps that need attention first, a count of the others), every step once it ends, and what
steps print shown as it is, never read as rich markup."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from funade.api.schemas import StepRecord
from funade.cli import rundisplay
from funade.cli.rundisplay import LiveDisplay

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(i: int, state: str, **fields: Any) -> StepRecord:
    fields.setdefault("started_at", T0 + timedelta(seconds=i))
    if state not in ("running", "pending"):
        fields.setdefault("finished_at", T0 + timedelta(seconds=i, milliseconds=500))
    return StepRecord(instance=f"step-{i}", node=f"step-{i}", state=state, **fields)


def run_and_spec(steps: int) -> tuple[Any, Any]:
    run = SimpleNamespace(id=7, attempt=1, steps=[])
    spec = SimpleNamespace(
        name="chain", nodes=[SimpleNamespace(id=f"step-{i}") for i in range(steps)]
    )
    return run, spec


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, height=20, emoji=False)
    monkeypatch.setattr(rundisplay, "console", console)
    return out


def texts(table: Any) -> list[str]:
    """The first two columns of each row, as drawn."""
    steps, states = table.columns[0]._cells, table.columns[1]._cells
    return [f"{a} {b}" for a, b in zip(steps, states, strict=True)]


def test_a_tall_run_fits_the_screen_with_what_needs_attention(terminal: io.StringIO) -> None:
    display = LiveDisplay(logs=False)
    display.order = [f"step-{i}" for i in range(40)]
    for i in range(40):
        state = "succeeded" if i < 35 else ("cached" if i < 37 else "running")
        display.step(record(i, state))
    display.step(record(5, "failed", error="boom"))
    rows = texts(display.__rich__())
    assert len(rows) == 20 - 8, rows
    assert "step-5 [bold red]failed[/]" in rows
    assert [r for r in rows if "running" in r] == [
        "step-37 [bold cyan]running[/]",
        "step-38 [bold cyan]running[/]",
        "step-39 [bold cyan]running[/]",
    ]
    assert "step-36 [green]cached[/]" in rows, "the latest finished come next"
    assert "step-30 [green]succeeded[/]" in rows
    assert "step-29 [green]succeeded[/]" not in rows
    assert rows[-1] == "… 29 more 29 succeeded"


def test_the_last_drawing_shows_every_step(terminal: io.StringIO) -> None:
    display = LiveDisplay(logs=False)
    display.started(*run_and_spec(40))
    for i in range(40):
        display.step(record(i, "succeeded"))
    display.stop()
    drawn = terminal.getvalue()
    for i in range(40):
        assert f"step-{i} " in drawn
    assert "more" not in drawn.splitlines()[-3]


def test_what_steps_print_is_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    display = LiveDisplay(logs=True)  # not a terminal: a line per change
    display.log("train[default]", "[red]not red[/red] [/oops] [bold]")
    display.step(record(1, "failed", error="bad value [x] in [/col]"))
    out = capsys.readouterr().out
    assert "train[default] | [red]not red[/red] [/oops] [bold]" in out
    assert "step-1: failed (bad value [x] in [/col])" in out
