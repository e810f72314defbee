"""`funade keys create|list|revoke`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from funade.cli.output import JSON_HELP, client, console, print_json, table, when
from funade.errors import InvalidInputError

app = typer.Typer(
    help="API keys: shown once, stored hashed, scoped per project.", no_args_is_help=True
)


def _expiry(text: str | None) -> datetime | None:
    if text is None:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    if len(text) > 1 and text[:-1].isdigit() and text[-1] in units:
        return datetime.now(UTC) + timedelta(seconds=int(text[:-1]) * units[text[-1]])
    raise InvalidInputError(
        f"--expires {text!r} is not a duration.",
        field="expires",
        value=text,
        fix="Give a number with m, h or d, e.g. '30d' or '12h'.",
    )


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key, e.g. 'ci'.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", "-s", help="admin, write, read or predict; repeat for more."),
    ],
    project: Annotated[
        str | None,
        typer.Option(
            "--project", "-p", help="Project the key works in; omit for a global key (admin only)."
        ),
    ] = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. '30d' or '12h'.")] = None,
    deployment: Annotated[
        str | None, typer.Option(help="Limit a predict key to this deployment.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Create a key. It is printed once; only its hash is stored."""
    with client() as api:
        row = api.create_key(
            name, scope, project=project, expires_at=_expiry(expires), deployment=deployment
        )
    if as_json:
        print_json(row)
        return
    console.print(
        f"Created key [bold]{row.id}[/] ({row.name}, scopes {', '.join(row.scopes)}"
        f"{', project ' + row.project if row.project else ', all projects'})."
    )
    console.print("It is shown only now; store it safely:")
    typer.echo(row.key)


@app.command("list")
def list_(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project's keys.")
    ] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List keys (never their secrets)."""
    with client() as api:
        rows = api.list_keys(project=project, include_revoked=revoked)
    if as_json:
        print_json(rows)
        return
    table(
        "API keys",
        ["id", "name", "project", "scopes", "created", "expires", "last used", "revoked"],
        [
            (
                k.id,
                k.name,
                k.project or "(all)",
                ",".join(k.scopes),
                when(k.created_at),
                when(k.expires_at),
                when(k.last_used_at),
                when(k.revoked_at),
            )
            for k in rows
        ],
    )


@app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key at once."""
    with client() as api:
        row = api.revoke_key(key_id)
    typer.echo(f"Revoked key {row.id} ({row.name}).")
