"""`funade db upgrade|current`: explicit schema migrations."""

from __future__ import annotations

import typer

app = typer.Typer(help="The metadata store's schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Migrate the metadata store (FUNADE_DATABASE_URL) to the current schema."""
    from funade.settings import load_settings
    from funade.store import create_database
    from funade.store import upgrade as run_upgrade
    from funade.store.migrate import current_revision

    settings = load_settings()
    db = create_database(settings.resolved_database_url)
    before = current_revision(db)
    run_upgrade(db)
    after = current_revision(db)
    if before == after:
        typer.echo(f"{db.url} is already at schema {after}.")
    else:
        typer.echo(f"Upgraded {db.url} from schema {before or 'empty'} to {after}.")
    db.dispose()


@app.command("current")
def current() -> None:
    """Show the schema version of the store and the version this funade needs."""
    from funade.settings import load_settings
    from funade.store import create_database
    from funade.store.migrate import current_revision, head_revision

    settings = load_settings()
    db = create_database(settings.resolved_database_url)
    typer.echo(f"database: {db.url}")
    typer.echo(f"current:  {current_revision(db) or 'empty'}")
    typer.echo(f"needed:   {head_revision()}")
    db.dispose()
