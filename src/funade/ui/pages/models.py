"""The models section: the project's models, one model (aliases and versions), one version
(signature, golden examples, figures and its lineage drawn as a graph)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from funade.api.routes import deployments as deployment_routes
from funade.api.routes import models as model_routes
from funade.api.routes import runs as run_routes
from funade.api.routes import versions as version_routes
from funade.api.schemas import DeploymentOut, RunOut, VersionOut
from funade.errors import FunadeError
from funade.ui import reads
from funade.ui.graphs import Graph, Node, layout
from funade.ui.web import Signed, Viewer, render

router = APIRouter(include_in_schema=False)

PAGE = 50
KEY_METRICS = 4
"""Metric columns in a model's versions table: the ones most of the page's versions have."""
MAX_DATA_NODES = 12
"""Data inputs drawn in a lineage graph; the rest are listed under it."""
GOLDEN_VALUES = 24
"""Values of a golden tensor shown before "…" (the whole example is in the API)."""


def human_size(size: int | None) -> str:
    """``1.4 MB``, ``512 B``."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # not reached


def short_digest(digest: str | None, length: int = 12) -> str:
    """``sha256:0123abcd…`` → ``0123abcd4567``: enough to tell blobs apart."""
    if not digest:
        return ""
    return digest.split(":", 1)[-1][:length]


def _home(viewer: Viewer) -> str:
    return "?project=" + quote(viewer.project, safe="")


@router.get("/models", response_class=HTMLResponse)
def models_page(
    viewer: Signed, q: str | None = None, archived: bool = False, cursor: str | None = None
) -> HTMLResponse:
    page = model_routes.list_models(
        viewer.project,
        viewer.state,
        viewer.principal,
        q=q or None,
        archived=archived,
        cursor=cursor or None,
        limit=PAGE,
    )
    return render(
        viewer,
        "models.html",
        request=viewer.request,
        section="models",
        title="Archived models" if archived else "Models",
        models=page.items,
        next_cursor=page.next_cursor,
        q=q or "",
        archived=archived,
        first_page=not cursor,
    )


def _key_metrics(versions: list[VersionOut]) -> list[str]:
    counts = Counter(name for v in versions for name in v.metrics)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, _ in ranked[:KEY_METRICS]]


@router.get("/models/{model}", response_class=HTMLResponse)
def model_page(viewer: Signed, model: str, cursor: str | None = None) -> HTMLResponse:
    state, principal, project = viewer.state, viewer.principal, viewer.project
    row = model_routes.get_model(project, model, state, principal)
    page = version_routes.list_versions(
        project, model, state, principal, archived=None, cursor=cursor or None, limit=PAGE
    )
    return render(
        viewer,
        "model.html",
        request=viewer.request,
        section="models",
        title=row.name,
        model=row,
        versions=page.items,
        next_cursor=page.next_cursor,
        metric_names=_key_metrics(page.items),
        key_names=reads.key_names(viewer, project, {v.created_by for v in page.items}),
        can_write=viewer.can("write"),
        api=f"/api/v1/projects/{quote(project, safe='')}/models/{quote(row.name, safe='')}",
    )


@dataclass(frozen=True)
class Serving:
    """A deployment with revisions of the version in view, and the traffic they take."""

    deployment: DeploymentOut
    revisions: list[int]
    traffic: int


def _serving(version: VersionOut, deployments: list[DeploymentOut]) -> list[Serving]:
    out = []
    for d in deployments:
        revisions = [
            r.number
            for r in d.revisions
            if r.model == version.model and r.version == version.version
        ]
        if revisions:
            traffic = sum(d.traffic.get(n, 0) for n in revisions)
            out.append(Serving(d, revisions, traffic))
    return out


def _repository(git: dict[str, Any]) -> str:
    """A short name for the repository: ``org/churn`` from its remote, else its folder."""
    url = str(git.get("remote_url") or "")
    if url:
        path = urlsplit(url).path if "://" in url else url.rpartition(":")[2]
        parts = [p for p in path.removesuffix(".git").split("/") if p]
        if parts:
            return "/".join(parts[-2:])
    root = str(git.get("root") or "")
    return PurePosixPath(root).name if root else "repository"


def _data_inputs(lineage: dict[str, Any]) -> list[dict[str, str]]:
    """Datasets logged with the model, then the inputs of the pipeline step that registered it."""
    inputs: list[dict[str, str]] = []
    datasets = lineage.get("datasets")
    if isinstance(datasets, dict):
        for name, about in datasets.items():
            about = about if isinstance(about, dict) else {}
            inputs.append(
                {
                    "id": f"data-{name}",
                    "name": str(name),
                    "digest": str(about.get("digest") or ""),
                    "kind": str(about.get("kind") or "data"),
                }
            )
    run = lineage.get("run")
    step_inputs = run.get("inputs") if isinstance(run, dict) else None
    if isinstance(step_inputs, dict):
        for name, value in step_inputs.items():
            if isinstance(value, dict) and "value" in value:
                continue  # a parameter, not data
            digest = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            inputs.append(
                {"id": f"input-{name}", "name": str(name), "digest": digest, "kind": "step input"}
            )
    return inputs


def lineage_graph(
    viewer: Viewer,
    version: VersionOut,
    run: RunOut | None,
    serving: list[Serving],
) -> Graph:
    """commit and data → the run that made it → this version → deployments serving it."""
    lineage = version.lineage
    home = _home(viewer)
    graph = Graph()
    git = lineage.get("git") if isinstance(lineage.get("git"), dict) else None
    sources: list[str] = []
    if git is not None:
        commit = str(git.get("commit") or "")
        dirty = bool(git.get("dirty"))
        repo = _repository(git)
        sub = repo + (" · dirty" if dirty else "")
        title = f"commit {commit or 'none'} in {git.get('remote_url') or git.get('root') or repo}"
        if git.get("branch"):
            title += f" on {git['branch']}"
        if dirty:
            title += " (with uncommitted changes)"
        graph.add(
            Node(
                "commit",
                f"commit {commit[:8]}" if commit else "no commit yet",
                sub,
                css="commit dirty" if dirty else "commit",
                title=title,
            )
        )
        sources.append("commit")
    inputs = _data_inputs(lineage)
    for item in inputs[:MAX_DATA_NODES]:
        graph.add(
            Node(
                item["id"],
                item["name"],
                f"{item['kind']} · {short_digest(item['digest'])}",
                css="data",
                title=f"{item['kind']} {item['name']}: {item['digest']}",
            )
        )
        sources.append(item["id"])
    run_info = lineage.get("run") if isinstance(lineage.get("run"), dict) else None
    target = "version"
    if run_info is not None and run_info.get("id") is not None:
        run_id = run_info["id"]
        step = str(run_info.get("step") or "")
        pipeline = run.pipeline if run is not None else str(run_info.get("pipeline") or "")
        sub = pipeline + (f" · {step}" if step else "")
        if run is not None:
            sub = f"{run.state} · {sub}"
        graph.add(
            Node(
                "run",
                f"run #{run_id}",
                sub,
                css=f"run state-{run.state}" if run is not None else "run",
                href=f"/runs/{quote(str(run_id), safe='')}{home}",
                title=f"pipeline run #{run_id} ({pipeline}), step {step or '?'}",
            )
        )
        target = "run"
        graph.link("run", "version")
    for source in sources:
        graph.link(source, target)
    graph.add(
        Node(
            "version",
            f"{version.model}:{version.version}",
            version.flavor + (" · archived" if version.archived else ""),
            css="version current",
            title=f"this version, {version.model}:{version.version} ({version.flavor})",
        )
    )
    for use in serving:
        d = use.deployment
        node_id = f"deployment-{d.name}"
        graph.add(
            Node(
                node_id,
                d.name,
                f"{d.state.replace('_', ' ')} · {use.traffic}% traffic",
                css=f"deployment state-{d.state}",
                href=f"/deployments/{quote(d.name, safe='')}{home}",
                title=f"deployment {d.name}: {d.state}, {use.traffic}% of its traffic",
            )
        )
        graph.link("version", node_id)
    return layout(graph)


def _golden(examples: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Golden examples as rows to show: each tensor's name, datatype, shape and first values."""
    out = []
    for example in examples or []:
        shown: dict[str, list[dict[str, Any]]] = {}
        for side in ("inputs", "outputs"):
            rows = []
            for tensor in example.get(side) or []:
                data = tensor.get("data") or []
                values = data if isinstance(data, list) else [data]
                rows.append(
                    {
                        "name": tensor.get("name", ""),
                        "datatype": tensor.get("datatype", ""),
                        "shape": tensor.get("shape", []),
                        "values": values[:GOLDEN_VALUES],
                        "more": max(0, len(values) - GOLDEN_VALUES),
                    }
                )
            shown[side] = rows
        out.append(shown)
    return out


@router.get("/models/{model}/versions/{number}", response_class=HTMLResponse)
def version_page(viewer: Signed, model: str, number: str) -> HTMLResponse:
    """``number`` is a version number (an alias or ``latest`` work too, as in the API)."""
    state, principal, project = viewer.state, viewer.principal, viewer.project
    version = version_routes.get_version(project, model, number, state, principal)
    deployments = deployment_routes.list_deployments(state, principal, project=project)
    serving = _serving(version, deployments)
    run: RunOut | None = None
    run_info = version.lineage.get("run")
    if isinstance(run_info, dict) and str(run_info.get("id", "")).isdigit():
        try:
            run = run_routes.get_run(int(run_info["id"]), state, principal)
        except FunadeError:
            run = None  # deleted, or in a project this key cannot read: the lineage still says it
    signature = version.signature if isinstance(version.signature, dict) else {}
    git = version.lineage.get("git")
    git = git if isinstance(git, dict) else None
    return render(
        viewer,
        "version.html",
        request=viewer.request,
        section="models",
        title=f"{version.model}:{version.version}",
        v=version,
        signature=signature,
        golden=_golden(version.golden_examples),
        graph=lineage_graph(viewer, version, run, serving),
        run=run,
        serving=serving,
        data_inputs=_data_inputs(version.lineage),
        git=git,
        repository=_repository(git) if git is not None else "",
        key_names=reads.key_names(viewer, project, {version.created_by}),
        can_write=viewer.can("write"),
        size=human_size,
        short=short_digest,
        model_api=(
            f"/api/v1/projects/{quote(project, safe='')}/models/{quote(version.model, safe='')}"
        ),
    )
