"""How a pipeline run is shown on the command line: its steps as a live table while it runs
(``LiveDisplay``), and how it ended (``end_run``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from funade.cli.output import console, print_json

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

    from funade.api.schemas import RunOut, StepRecord
    from funade.pipelines.spec import PipelineSpec

__all__ = ["LiveDisplay", "end_run", "step_duration", "step_note"]

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


def step_duration(record: StepRecord) -> str:
    if record.started_at is None:
        return ""
    end = record.finished_at or datetime.now(UTC)
    return f"{(end - record.started_at).total_seconds():.2f}s"


def step_note(record: StepRecord) -> str:
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
            note = step_note(record)
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
                step_duration(record),
                escape(step_note(record)),
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


def end_run(result: RunOut, *, json_out: bool) -> None:
    """Print how the run ended; exit 1 unless it succeeded."""
    if json_out:
        print_json(result)
    else:
        _finished(result)
    if result.state != "succeeded":
        raise typer.Exit(1)
