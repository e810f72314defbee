"""Signing in (with an API key, or the one-time link ``funade up`` prints) and out; both
forms only from this dashboard's own page (``check_same_origin``)."""

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


_SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})
"""``Sec-Fetch-Site`` values of a request this dashboard's own page made (or the person did)."""
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FROM_HERE = "Open this dashboard's own sign-in page (/signin) and sign in there."


def _origin(url: str) -> tuple[str, str, int] | None:
    """``url``'s origin as (scheme, host, port), the port filled in; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def check_same_origin(request: Request) -> None:
    """Refuse a sign-in or sign-out form that another page than this dashboard's sent: login
    CSRF, where another site's form signs the victim in as the attacker (whose dashboard the
    victim then fills with their work), or signs them out.

    Browsers send ``Origin`` with every POST, ``null`` from an opaque origin (a sandboxed frame,
    a ``data:`` or ``file:`` page, a cross-site redirect), and ``Sec-Fetch-Site`` (Chromium 76+,
    Firefox 90+, Safari 16.4+). The form passes if its ``Origin`` is this server's own scheme,
    host and port, and ``Sec-Fetch-Site``, if sent, is ``same-origin`` or ``none``; without an
    ``Origin``, only with such a ``Sec-Fetch-Site``. A request with neither is refused: no
    browser sends such a POST, and a script can send ``Origin`` itself."""
    own = f"{request.url.scheme}://{request.url.netloc}"
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _SAME_ORIGIN_FETCH:
        raise PermissionDeniedError(
            f"The form was sent from another site's page (Sec-Fetch-Site: {site}), not from "
            "this dashboard.",
            field="sec-fetch-site",
            value=site,
            fix=_FROM_HERE,
        )
    if origin is None:
        if site is None:
            raise PermissionDeniedError(
                "The form came without an Origin header, so it cannot be told from another "
                "site's form.",
                field="origin",
                value=None,
                fix=_FROM_HERE + f" A script sends `Origin: {own}` with the form.",
            )
        return
    if origin.strip().lower() == "null":
        raise PermissionDeniedError(
            "The form was sent from a page without an origin (Origin: null: a sandboxed frame, "
            "a data: or file: page, or a redirect from another site), not from this dashboard.",
            field="origin",
            value=origin,
            fix=_FROM_HERE,
        )
    if _origin(origin) is None or _origin(origin) != _origin(own):
        raise PermissionDeniedError(
            f"The form was sent from {origin}, not from this dashboard ({own}).",
            field="origin",
            value=origin,
            fix=_FROM_HERE,
        )


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, next: str = "/", reason: str = "") -> HTMLResponse:
    return render(
        None, "signin.html", request=request, title="Sign in", next=_safe_next(next), reason=reason
    )


@router.post("/signin", response_model=None)
async def signin(request: Request) -> Response:
    """Form fields ``key`` (an API key or a sign-in link) and ``next``; sets the session cookie
    and goes to ``next``."""
    check_same_origin(request)
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
    check_same_origin(request)
    text = request.cookies.get(SESSION_COOKIE)
    if text:
        await run_in_threadpool(session.sign_out, get_state(request).db, text)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
