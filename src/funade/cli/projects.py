"""`funade projects list|create`."""

from __future__ import annotations

from typing import Annotated

import typer

from funade.cli.output import JSON_HELP, client, print_json, table, when

app = typer.Typer(help="Projects: namespaces that isolate models and keys.", no_args_is_help=True)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """List the projects your key can see."""
    with client() as api:
        rows = api.list_projects()
    if as_json:
        print_json(rows)
        return
    table(
        "Projects",
        ["name", "description", "created"],
        [(p.name, p.description, when(p.created_at)) for p in rows],
    )


@app.command("create")
def create(
    name: str,
    description: Annotated[str, typer.Option(help="What the project is for.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Create a project (needs a global admin key)."""
    with client() as api:
        row = api.create_project(name, description)
    if as_json:
        print_json(row)
    else:
        typer.echo(f"Created project {row.name!r}.")
