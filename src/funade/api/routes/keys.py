"""API keys: created (shown once), listed, revoked. Admins only."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request

from funade import audit
from funade.api.convert import key_out
from funade.api.deps import Admin, State
from funade.api.schemas import KeyIn, KeyOut, NewKeyOut
from funade.api.state import AppState
from funade.auth import service as keys
from funade.projects import get_project
from funade.urls import http_url

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


@router.get("", response_model=list[KeyOut])
def list_keys(
    state: State,
    principal: Admin,
    project: str | None = None,
    include_revoked: bool = False,
    kind: str | None = None,
) -> list[KeyOut]:
    """A project admin sees its project's keys; a global admin sees all, or one project's."""
    project = project or principal.project
    with state.db.read() as session:
        if project is not None:
            principal.require("admin", project)
        proj = get_project(session, project) if project is not None else None
        rows = keys.list_keys(session, project=proj, include_revoked=include_revoked)
        return [key_out(r) for r in rows if kind is None or r.kind == kind]


def gateway_base(state: AppState, request: Request) -> str:
    """The gateway's address as the caller's browser reaches it: the ``gateway_url`` setting,
    else the host this request came to, at the gateway's port."""
    if state.settings.gateway_url:
        return state.settings.gateway_url.rstrip("/")
    host = urlsplit(str(request.base_url)).hostname or "127.0.0.1"
    if host == "funade.local":  # the in-process API over its Unix socket: this machine
        host = "127.0.0.1"
    port = state.gateway_port or state.settings.gateway_port
    return http_url(host, port, request.url.scheme)


def loopback_warning(base: str) -> str | None:
    """What to say when ``base`` names this machine only (127.0.0.1, ::1, localhost), which no
    phone or other computer reaches; None otherwise."""
    host = urlsplit(base).hostname or ""
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        loopback = host.endswith(".localhost")
    if not loopback:
        return None
    return (
        f"The try-it link points at {base}, which only this machine reaches: a phone "
        "scanning the code cannot open it. Set `gateway_url` (FUNADE_GATEWAY_URL) to an "
        "address others reach, e.g. http://192.168.1.5:8480, start `funade up --host 0.0.0.0` "
        "so that the gateway listens there, and make the codes again."
    )


def try_url(state: AppState, request: Request, deployment: str, key: str) -> str:
    """The gateway's try-it page for ``deployment``, signed in with ``key`` (in the fragment,
    which browsers never send to a server, so the key stays out of access logs)."""
    return f"{gateway_base(state, request)}/try/{quote(deployment)}#key={key}"


def qr_svg(url: str, title: str) -> str:
    """``url`` as a QR code, an inline SVG that scales with its box."""
    import segno

    svg: str = segno.make(url, error="m").svg_inline(scale=4, title=title, omitsize=True)
    return svg


@router.post("", response_model=NewKeyOut, status_code=201)
def create_key(body: KeyIn, state: State, principal: Admin, request: Request) -> NewKeyOut:
    """A new key, shown once. A deployment key (``--deployment``) comes with its try-it link
    and that link as a QR code; a group token is one with an expiry, for handing out."""
    principal.require("admin", body.project)
    with state.db.session() as session:
        proj = get_project(session, body.project) if body.project is not None else None
        text, row = keys.create_key(
            session,
            name=body.name,
            scopes=body.scopes,
            project=proj,
            created_by=principal.key_id,
            expires_at=body.expires_at,
            deployment=body.deployment,
            kind=body.kind,
            allow_cidrs=body.allow_cidrs,
        )
        audit.record(
            session,
            principal,
            "key.create",
            row.id,
            project=proj,
            name=row.name,
            scopes=row.scopes,
            kind=row.kind,
            **({"deployment": row.deployment} if row.deployment else {}),
            **({"allow_cidrs": row.allow_cidrs} if row.allow_cidrs else {}),
        )
        out = key_out(row)
    url = try_url(state, request, out.deployment, text) if out.deployment else None
    base = gateway_base(state, request) if out.deployment else None
    return NewKeyOut(
        **out.model_dump(),
        key=text,
        try_url=url,
        qr_svg=qr_svg(url, f"Try {out.deployment}: {out.name}") if url else None,
        gateway_url=base,
        gateway_warning=loopback_warning(base) if base else None,
    )


@router.delete("/{key_id}", response_model=KeyOut)
def revoke_key(key_id: str, state: State, principal: Admin) -> KeyOut:
    with state.db.session() as session:
        row = keys.revoke_key(session, keys.get_key(session, key_id, principal=principal))
        audit.record(session, principal, "key.revoke", row.id, project=row.project, name=row.name)
        return key_out(row)
