"""`funade models list|show|versions|alias|archive|unarchive|download`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from funade.cli.output import JSON_HELP, PROJECT_HELP, client, console, print_json, table, when
from funade.names import parse_model_ref
from funade.progress import transfer_progress

app = typer.Typer(help="The model registry: models, versions, aliases.", no_args_is_help=True)

Project = Annotated[str | None, typer.Option("--project", "-p", help=PROJECT_HELP)]
Json = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command("list")
def list_(
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Only names containing this.")
    ] = None,
    archived: Annotated[
        bool, typer.Option("--archived", help="Show archived models instead.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Models per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Page cursor from a previous --json call.")
    ] = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """List models."""
    with client(project) as api:
        page = api.list_models(query=query, archived=archived, limit=limit, cursor=cursor)
    if as_json:
        print_json(page)
        return
    table(
        f"Models in {project or api.project}",
        ["name", "latest", "aliases", "description", "updated"],
        [
            (
                m.name,
                m.latest_version,
                " ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())),
                m.description,
                when(m.updated_at),
            )
            for m in page.items
        ],
    )
    if page.next_cursor:
        console.print(f"More: --cursor {page.next_cursor}")


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="churn, churn:3 or churn@production")],
    project: Project = None,
    as_json: Json = False,
) -> None:
    """Show one version: signature, lineage, params, metrics, tags."""
    name, version_ref = parse_model_ref(ref)
    with client(project) as api:
        version = api.get_version(name, version_ref)
    if as_json:
        print_json(version)
        return
    git = version.lineage.get("git") or {}
    console.print(f"[bold]{version.model}:{version.version}[/]  {version.description}")
    rows = [
        ("flavor", version.flavor),
        ("artifact", f"{version.artifact.digest} ({version.artifact.size:,} bytes)"),
        ("aliases", ", ".join(version.aliases)),
        ("archived", "yes" if version.archived else "no"),
        ("created", f"{when(version.created_at)} by {version.created_by or '-'}"),
        ("git", _git_line(git)),
        ("params", json.dumps(version.params) if version.params else ""),
        ("metrics", json.dumps(version.metrics) if version.metrics else ""),
        ("tags", json.dumps(version.tags) if version.tags else ""),
    ]
    table(None, ["", ""], rows)
    sig = version.signature
    table(
        "Signature",
        ["", "name", "datatype", "shape"],
        [("in", t["name"], t["datatype"], t["shape"]) for t in sig.get("inputs", [])]
        + [("out", t["name"], t["datatype"], t["shape"]) for t in sig.get("outputs", [])],
    )


def _git_line(git: dict[str, object]) -> str:
    if not git:
        return "-"
    dirty = " (dirty)" if git.get("dirty") else ""
    return f"{git.get('commit', '-')} on {git.get('branch', '-')}{dirty}"


@app.command("versions")
def versions(
    model: str,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="key=value; repeat to AND.")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="e.g. 'auc>0.8'; repeat to AND.")
    ] = None,
    archived: Annotated[
        bool | None, typer.Option("--archived/--active", help="Only archived / only active.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Versions per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Page cursor from a previous --json call.")
    ] = None,
    project: Project = None,
    as_json: Json = False,
) -> None:
    """List a model's versions, newest first."""
    with client(project) as api:
        page = api.list_versions(
            model, tags=tag, metrics=metric, archived=archived, limit=limit, cursor=cursor
        )
    if as_json:
        print_json(page)
        return
    table(
        f"Versions of {model}",
        ["version", "aliases", "flavor", "metrics", "git", "archived", "created"],
        [
            (
                v.version,
                ", ".join(v.aliases),
                v.flavor,
                " ".join(f"{k}={val:.4g}" for k, val in v.metrics.items()),
                ((v.lineage.get("git") or {}).get("commit") or "")[:10],
                "yes" if v.archived else "",
                when(v.created_at),
            )
            for v in page.items
        ],
    )
    if page.next_cursor:
        console.print(f"More: --cursor {page.next_cursor}")


@app.command("alias")
def alias(
    model: str,
    name: Annotated[str, typer.Argument(help="The alias, e.g. production.")],
    version: Annotated[int | None, typer.Argument(help="Version to point at.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    project: Project = None,
) -> None:
    """Point an alias at a version (or --delete it)."""
    with client(project) as api:
        if delete:
            api.delete_alias(model, name)
            typer.echo(f"Deleted alias {model}@{name}.")
            return
        if version is None:
            current = api.get_version(model, name)
            typer.echo(f"{model}@{name} → version {current.version}")
            return
        row = api.set_alias(model, name, version)
    typer.echo(f"{model}@{row.alias} → version {row.version}")


def _set_archived(ref: str, project: str | None, archived: bool) -> None:
    name, version_ref = parse_model_ref(ref)
    word = "Archived" if archived else "Unarchived"
    with client(project) as api:
        if ":" in ref:
            api.update_version(name, int(version_ref), archived=archived)
            typer.echo(f"{word} {name}:{version_ref}.")
        else:
            api.update_model(name, archived=archived)
            typer.echo(f"{word} model {name}.")


@app.command("archive")
def archive(
    ref: Annotated[str, typer.Argument(help="A model (churn) or one version (churn:3).")],
    project: Project = None,
) -> None:
    """Archive a model or a version: hidden from lists and 'latest', kept for lineage."""
    _set_archived(ref, project, True)


@app.command("unarchive")
def unarchive(
    ref: Annotated[str, typer.Argument(help="A model (churn) or one version (churn:3).")],
    project: Project = None,
) -> None:
    """Undo archive."""
    _set_archived(ref, project, False)


@app.command("download")
def download(
    ref: Annotated[str, typer.Argument(help="churn, churn:3 or churn@production")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File to write the package (a tar) to.")
    ],
    project: Project = None,
) -> None:
    """Download a version's package, verified by digest, with a progress bar."""
    name, version_ref = parse_model_ref(ref)
    with client(project) as api:
        version = api.get_version(name, version_ref)
        with transfer_progress(None, f"{name}:{version.version}", version.artifact.size) as report:
            api.download_artifact(version.artifact.digest, output, progress=report)
    typer.echo(f"Wrote {output} ({version.artifact.digest}).")
