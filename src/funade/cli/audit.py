"""`funade audit`: who changed what, when, from where."""

from __future__ import annotations

from typing import Annotated

import typer

from funade.cli.output import JSON_HELP, client, print_json, table, when


def audit(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project.")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="Only actions starting with this, e.g. 'key.'.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many events (newest first).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show the audit log (admin keys only)."""
    with client() as api:
        page = api.audit(project=project, action=action, limit=limit)
    if as_json:
        print_json(page)
        return
    table(
        "Audit log",
        ["when", "project", "who", "action", "target", "from"],
        [
            (
                when(e.at),
                e.project,
                f"{e.actor_name} ({e.actor_key_id})",
                e.action,
                e.target,
                e.client_ip,
            )
            for e in page.items
        ],
    )
