"""Signing in (with an API key, or the one-time link ``funade up`` prints) and out."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from funade.api.deps import SESSION_COOKIE, get_state
from funade.errors import FunadeError, PermissionDeniedError
from funade.ui import session
from funade.ui.web import render

router = APIRouter(include_in_schema=False)

_FORM_LIMIT = 16 * 1024


def _safe_next(target: str | None) -> str:
    """Only a path on this server (never ``//elsewhere`` or ``https://...``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _same_origin(request: Request) -> None:
    """Refuse a form posted from another site's page (the browser sends ``Origin``)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = urlsplit(origin).netloc
        if host != request.headers.get("host"):
            raise PermissionDeniedError(
                f"The form was sent from {origin}, not from this dashboard.",
                field="origin",
                value=origin,
                fix="Open the dashboard's own sign-in page and sign in there.",
            )


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, next: str = "/", reason: str = "") -> HTMLResponse:
    return render(
        None, "signin.html", request=request, title="Sign in", next=_safe_next(next), reason=reason
    )


@router.post("/signin", response_model=None)
async def signin(request: Request) -> Response:
    """Form fields ``key`` and ``next``; sets the session cookie and goes to ``next``."""
    _same_origin(request)
    body = await request.body()
    fields = parse_qs(body[:_FORM_LIMIT].decode("utf-8", "replace"))
    key = (fields.get("key") or [""])[0].strip()
    target = _safe_next((fields.get("next") or ["/"])[0])
    state = get_state(request)
    client_ip = request.client.host if request.client else None
    try:
        if not key:
            raise PermissionDeniedError(
                "Paste an API key to sign in.",
                field="key",
                fix="`funade up` saved one in $FUNADE_HOME/credentials; "
                "`funade keys create` makes more.",
            )

        text, _principal = await run_in_threadpool(
            session.sign_in, state.db, key, client_ip=client_ip
        )
    except FunadeError as exc:
        return render(
            None,
            "signin.html",
            request=request,
            title="Sign in",
            next=target,
            error=exc,
            status_code=401 if not isinstance(exc, PermissionDeniedError) else 403,
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        text,
        max_age=session.SESSION_HOURS * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/signout", response_model=None)
async def signout(request: Request) -> Response:
    _same_origin(request)
    text = request.cookies.get(SESSION_COOKIE)
    if text:
        await run_in_threadpool(session.sign_out, get_state(request).db, text)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
