"""`funade keys create|list|revoke|rotate-admin`."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape

from funade.cli.output import JSON_HELP, client, console, console_err, print_json, table, when
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
        list[str] | None,
        typer.Option(
            "--scope",
            "-s",
            help="admin, write, read, predict or deploy-code (deploying models whose loading "
            "runs code); repeat for more (a --group token: predict).",
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project", "-p", help="Project the key works in; omit for a global key (admin only)."
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", "--expires-in", help="Lifetime, e.g. '30d' or '8h'."),
    ] = None,
    deployment: Annotated[
        str | None, typer.Option(help="Limit a predict key to this deployment.")
    ] = None,
    group: Annotated[
        bool,
        typer.Option(
            "--group",
            help="A group token: opens --deployment's try-it page for --expires-in (printed "
            "as a link and a QR code to scan).",
        ),
    ] = False,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="Only usable from this address or network (e.g. 192.168.1.0/24); repeat for more.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Create a key. It is printed once; only its hash is stored.

    `funade keys create "Group 1" --group --deployment digits --project default --expires-in 8h`
    prints a try-it link with a QR code for a group of people to scan."""
    scopes = list(scope or ())
    if group:
        scopes = scopes or ["predict"]
        _group_options(deployment, expires)
    elif not scopes:
        raise InvalidInputError(
            "Give the key at least one --scope.",
            field="scope",
            value=None,
            fix="e.g. `--scope read`; repeat it for more (admin, write, read, predict).",
        )
    with client() as api:
        row = api.create_key(
            name,
            scopes,
            project=project or (api.project if deployment else None),
            expires_at=_expiry(expires),
            deployment=deployment,
            kind="group" if group else "key",
            allow_cidrs=list(allow) if allow else None,
        )
    if as_json:
        print_json(row)
        return
    console.print(
        f"Created {'group token' if row.kind == 'group' else 'key'} [bold]{row.id}[/] ({row.name}, "
        f"scopes {', '.join(row.scopes)}"
        f"{', project ' + row.project if row.project else ', all projects'}"
        f"{', deployment ' + row.deployment if row.deployment else ''}"
        f"{', until ' + when(row.expires_at) if row.expires_at else ''}"
        f"{', only from ' + ' '.join(row.allow_cidrs) if row.allow_cidrs else ''})."
    )
    console.print("It is shown only now; store it safely:")
    typer.echo(row.key)
    if row.try_url:
        console.print("Its try-it page (scan the code with a phone or tablet):")
        typer.echo(row.try_url)
        typer.echo(qr_text(row.try_url))
    if row.gateway_warning and row.kind == "group":
        console_err.print(f"[yellow]warning:[/] {escape(row.gateway_warning)}", soft_wrap=True)


def _group_options(deployment: str | None, expires: str | None) -> None:
    if deployment is None:
        raise InvalidInputError(
            "A group token needs --deployment: the model its try-it page opens.",
            field="deployment",
            value=None,
            fix="e.g. `--group --deployment digits --expires-in 8h`.",
        )
    if expires is None:
        raise InvalidInputError(
            "A group token needs --expires-in: how long its QR code works.",
            field="expires",
            value=None,
            fix="e.g. `--expires-in 8h` (m, h or d).",
        )


def qr_text(url: str) -> str:
    """``url`` as a QR code in text (Unicode half blocks), for the terminal."""
    import segno

    buffer = io.StringIO()
    segno.make(url, error="m").terminal(out=buffer, compact=True)
    return buffer.getvalue().rstrip("\n")


@app.command("list")
def list_(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project's keys.")
    ] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys.")] = False,
    kind: Annotated[
        str | None,
        typer.Option(help="Only keys of this kind: key, group, session (dashboard) or link."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List keys (never their secrets), with the predictions each made at the gateway."""
    with client() as api:
        rows = api.list_keys(project=project, include_revoked=revoked, kind=kind)
    if as_json:
        print_json(rows)
        return
    table(
        "API keys",
        [
            "id",
            "name",
            "kind",
            "project",
            "scopes",
            "deployment",
            "created",
            "expires",
            "last used",
            "predictions",
            "revoked",
        ],
        [
            (
                k.id,
                k.name,
                k.kind,
                k.project or "(all)",
                ",".join(k.scopes),
                k.deployment,
                when(k.created_at),
                when(k.expires_at),
                when(k.last_used_at),
                k.predictions,
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


@app.command("rotate-admin")
def rotate_admin() -> None:
    """Replace the admin key with a new one and revoke the old one (with its dashboard sessions
    and the runs it started). Do it after upgrading from a version that let model code read
    the key (see docs/security.md), or whenever the key may have leaked.

    Without FUNADE_URL it rewrites $FUNADE_HOME/credentials (the control plane need not be
    stopped); with it, it asks that control plane and prints the new key once."""
    from funade.settings import load_settings

    settings = load_settings()
    if settings.url:
        with client() as api:
            me = api.whoami()
            if me.project is not None or "admin" not in me.scopes or me.key_id is None:
                raise InvalidInputError(
                    f"Key {me.name!r} is not a global admin key, so it cannot be rotated here.",
                    field="api_key",
                    value=me.key_id,
                    fix="Run it with the global admin key in FUNADE_API_KEY.",
                )
            new = api.create_key("admin", ["admin"])
            with api.with_key(new.key) as as_new:
                as_new.revoke_key(me.key_id)
        console.print(f"New admin key [bold]{new.id}[/]; the old one ({me.key_id}) is revoked.")
        console.print("It is shown only now; put it where FUNADE_API_KEY came from:")
        typer.echo(new.key)
        return
    from funade.bootstrap import open_database, rotate_admin_key

    db = open_database(settings, migrate=True)
    try:
        text, old = rotate_admin_key(settings, db)
    finally:
        db.dispose()
    from funade.auth.keys import parse_key

    console.print(
        f"New admin key [bold]{parse_key(text).key_id}[/] saved to {settings.credentials_file}"
        + (f"; the old one ({old}) is revoked." if old else ".")
    )
