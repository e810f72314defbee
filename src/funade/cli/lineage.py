"""`funade lineage churn:4`: where a version came from, and where it runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from funade.cli.output import JSON_HELP, PROJECT_HELP, client, console, print_json, when


def _short(digest: str) -> str:
    return digest[:19] + "…" if len(digest) > 20 else digest


def lineage(
    ref: Annotated[str, typer.Argument(help="A version: churn:4, churn@production or churn.")],
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """The chain behind a model version: pipeline run, step and its inputs, git commit, data,
    parameters and metrics; and the deployments serving it."""
    from funade.errors import FunadeError
    from funade.names import parse_model_ref

    name, version_ref = parse_model_ref(ref)
    with client(project) as api:
        version = api.get_version(name, version_ref)
        info: dict[str, Any] = dict(version.lineage or {})
        run_info = info.get("run") or {}
        run = None
        if run_info.get("id") is not None:
            try:
                run = api.get_run(int(run_info["id"]))
            except FunadeError:
                run = None
        serving = [
            (d.name, r.number, d.traffic.get(r.number, 0))
            for d in api.list_deployments()
            for r in d.revisions
            if r.model == name and r.version == version.version
        ]
    if json_out:
        print_json(
            {
                "version": version.model_dump(mode="json"),
                "run": run.model_dump(mode="json") if run else None,
                "deployments": [{"name": n, "revision": r, "weight": w} for n, r, w in serving],
            }
        )
        return
    console.print(
        f"[bold]{name}:{version.version}[/]  {_short(version.artifact.digest)}  "
        f"registered {when(version.created_at)}"
    )
    if run_info:
        state = f", {run.state}" if run else " (the run is no longer recorded)"
        console.print(f"  ← run {run_info['id']} of pipeline {run_info.get('pipeline')}{state}")
        if run is not None:
            console.print(f"      params: {run.params}" + (f"  env: {run.env}" if run.env else ""))
        console.print(f"  ← step {run_info.get('step')} (attempt {run_info.get('attempt', 1)})")
        for input_name, digest in (run_info.get("inputs") or {}).items():
            shown = _short(digest) if isinstance(digest, str) else digest
            console.print(f"      input {input_name}: {shown}")
    git = info.get("git") or (run.lineage.get("git") if run else None) or {}
    if git:
        dirty = " (uncommitted changes)" if git.get("dirty") else ""
        console.print(
            f"  ← git {str(git.get('commit', ''))[:12]} on {git.get('branch') or '?'}{dirty}"
            + (f"  {git['remote_url']}" if git.get("remote_url") else "")
        )
    for data_name, data in (info.get("datasets") or {}).items():
        console.print(f"  ← data {data_name}: {_short(str(data.get('digest', '')))}")
    if version.params:
        console.print(f"  params: {version.params}")
    if version.metrics:
        console.print(f"  metrics: {version.metrics}")
    for deployment, revision, weight in serving:
        console.print(f"  → deployment {deployment}, revision {revision} ({weight}% of traffic)")
