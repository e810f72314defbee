"""Printing for people (rich tables) and scripts (--json), and the client the commands use.

Only rich's console is imported here: a table, pydantic and the client are imported when a
command prints or calls (``funade --help`` needs none of them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:  # the client (httpx, the API's schemas) is imported when a command runs
    from pydantic import BaseModel

    from funade.client import Client

console = Console(highlight=False, emoji=False)  # a step or model named :x: prints as it is
console_err = Console(stderr=True, highlight=False, emoji=False)

JSON_HELP = "Print JSON for scripts instead of a table."
PROJECT_HELP = "Project to work in (default: FUNADE_PROJECT, else 'default')."


def client(project: str | None = None) -> Client:
    from funade.client import Client

    # The command's process ends when it is done: it need not wait for an in-process API to stop.
    api = Client(project=project, wait_on_close=False)
    if api.running_up is not None:  # no FUNADE_URL: say which control plane answers
        console_err.print(
            f"Using the `funade up` at {api.running_up.url} (pid {api.running_up.pid}, found "
            f"in {api.running_up.path}; FUNADE_URL is unset).",
            style="dim",
            soft_wrap=True,
            markup=False,
        )
    return api


def error_line(text: str) -> None:
    """``error: <text>`` on stderr, on one line whatever the terminal's width (no markup is
    read in ``text``: a step named ``train[default]`` prints as it is)."""
    console_err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [v.model_dump(mode="json") for v in value]
    if console.is_terminal:
        console.print_json(json.dumps(data))
    else:  # for a script: the same JSON, without rich's highlighting (0.3 s for a long run)
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table

    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*["-" if v is None or v == "" else str(v) for v in row])
    console.print(grid)
