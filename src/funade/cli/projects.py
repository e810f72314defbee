"""`funade projects list|create|update`."""

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
        ["name", "description", "trusts code", "created"],
        [
            (p.name, p.description, "yes" if p.trust_code else "no", when(p.created_at))
            for p in rows
        ],
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


@app.command("update")
def update(
    name: str,
    description: Annotated[str | None, typer.Option(help="What the project is for.")] = None,
    trust_code: Annotated[
        bool | None,
        typer.Option(
            "--trust-code/--no-trust-code",
            help="Let the project's write keys deploy models whose loading runs code "
            "(pickles, Python classes) and schedule pipelines, without the deploy-code scope.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Change a project (needs an admin key of the project)."""
    with client() as api:
        row = api.update_project(name, description=description, trust_code=trust_code)
    if as_json:
        print_json(row)
    else:
        trusts = "trusts code" if row.trust_code else "does not trust code"
        typer.echo(f"Project {row.name!r} {trusts}.")
