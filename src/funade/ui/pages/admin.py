"""Admin pages: API keys and group tokens (``/keys``), and the audit log (``/audit``).

Both read through the REST route functions (``routes/keys.py``, ``routes/audit.py``); every
change (creating a key, a sheet of group tokens, revoking) is the page's script calling the REST
API (``static/keys.js``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from funade.api.routes import audit as audit_routes
from funade.api.routes import deployments as deployment_routes
from funade.api.routes import keys as key_routes
from funade.api.schemas import KeyOut
from funade.auth.principal import SCOPES
from funade.store.schema import utcnow
from funade.ui import reads
from funade.ui.web import Signed, render

router = APIRouter(include_in_schema=False)

SHOW = {
    "current": "Keys in use and revoked ones",
    "active": "Only keys in use",
    "everything": "Everything, with dashboard sessions and sign-in links",
}
HIDDEN_KINDS = ("session", "link")
"""Shown only with ``show=everything``: one session per sign-in, one link per `funade up`."""

EXPIRIES = (
    ("", "Never"),
    ("3600", "1 hour"),
    ("28800", "8 hours"),
    ("86400", "1 day"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
    ("7776000", "90 days"),
)
GROUP_EXPIRIES = (
    ("3600", "1 hour"),
    ("7200", "2 hours"),
    ("14400", "4 hours"),
    ("28800", "8 hours"),
    ("86400", "1 day"),
    ("259200", "3 days"),
    ("604800", "7 days"),
)

AUDIT_PREFIXES = (
    "key.",
    "ui.",
    "model.",
    "version.",
    "alias.",
    "deployment.",
    "run.",
    "schedule.",
    "project.",
)


def key_state(key: KeyOut) -> str:
    """active, expired or revoked: the badge on each row."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= utcnow():
        return "expired"
    return "active"


@router.get("/keys", response_class=HTMLResponse)
def keys_page(
    viewer: Signed,
    show: Annotated[str, Query(description="current, active or everything")] = "current",
) -> HTMLResponse:
    state, principal, project = viewer.state, viewer.principal, viewer.project
    principal.require("admin", project)
    if show not in SHOW:
        show = "current"
    revoked = show != "active"
    if principal.is_global:  # the project's keys, and the global ones a global admin manages
        rows = [
            k
            for k in key_routes.list_keys(state, principal, project=None, include_revoked=revoked)
            if k.project in (None, project)
        ]
    else:
        rows = key_routes.list_keys(state, principal, project=project, include_revoked=revoked)
    rows.sort(key=lambda k: (k.created_at, k.id), reverse=True)
    # A sheet's tokens share one expiry: newest sheets first, each in the order it was made.
    groups = sorted(
        (k for k in rows if k.kind == "group"),
        key=lambda k: (-(k.expires_at.timestamp() if k.expires_at else 0), k.created_at, k.id),
    )
    others = [
        k
        for k in rows
        if k.kind != "group" and (show == "everything" or k.kind not in HIDDEN_KINDS)
    ]
    deployments = [d.name for d in deployment_routes.list_deployments(state, principal, project)]
    signed_with = reads.signed_with(viewer)
    by_deployment: dict[str, int] = {}
    for key in groups:
        by_deployment[key.deployment or ""] = by_deployment.get(key.deployment or "", 0) + (
            key.predictions
        )
    return render(
        viewer,
        "keys.html",
        request=viewer.request,
        section="keys",
        title="API keys",
        keys=others,
        groups=groups,
        states={k.id: key_state(k) for k in rows},
        group_predictions=by_deployment,
        deployments=deployments,
        scopes=SCOPES,
        expiries=EXPIRIES,
        group_expiries=GROUP_EXPIRIES,
        show=show,
        shows=SHOW,
        signed_with=signed_with,
        global_admin=principal.is_global,
        page_data={"project": project, "deployments": deployments},
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    viewer: Signed,
    action: Annotated[str, Query(max_length=64)] = "",
    cursor: str | None = None,
    everywhere: Annotated[bool, Query(alias="all")] = False,
) -> HTMLResponse:
    state, principal = viewer.state, viewer.principal
    everywhere = everywhere and principal.is_global
    project = None if everywhere else viewer.project
    principal.require("admin", project)
    page = audit_routes.list_audit(
        state,
        principal,
        project=project,
        action=action.strip() or None,
        cursor=cursor,
        limit=50,
    )
    return render(
        viewer,
        "audit.html",
        request=viewer.request,
        section="audit",
        title="Audit log",
        events=page.items,
        next_cursor=page.next_cursor,
        action=action.strip(),
        everywhere=everywhere,
        global_admin=principal.is_global,
        prefixes=AUDIT_PREFIXES,
        first_page=cursor is None,
        compact=compact,
    )


def compact(details: dict[str, Any], limit: int = 160) -> str:
    """``name=ci scopes=write,read``: an event's details on one short line."""
    parts = []
    for key, value in details.items():
        if isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            text = "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
        else:
            text = str(value)
        parts.append(f"{key}={text}")
    line = " ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"
