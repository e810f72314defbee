"""What every dashboard page shares: the templates, who is signed in, and errors in plain words.

A page handler is a sync function (FastAPI runs it in its thread pool) that takes the signed-in
``Viewer``, reads what it shows by calling the REST route functions (so the dashboard sees what
the API and CLI see, with the same scope checks, which each route function makes itself) or,
for what no route answers, ``ui/reads.py`` (which checks the same way), and returns
``render(...)``. Changes are made by the page's scripts (``static/ui.js``) calling the REST API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from funade import __version__
from funade.api.deps import SESSION_COOKIE, get_state
from funade.api.errors import status_for
from funade.api.routes import projects as project_routes
from funade.api.state import AppState
from funade.auth.principal import Principal
from funade.auth.service import check_key
from funade.errors import AuthenticationError, FunadeError
from funade.projects import DEFAULT_PROJECT

HERE = Path(__file__).parent
STATIC = HERE / "static"

NAV = (
    ("overview", "Overview", "/"),
    ("models", "Models", "/models"),
    ("deployments", "Deployments", "/deployments"),
    ("runs", "Runs", "/runs"),
    ("schedules", "Schedules", "/schedules"),
    ("keys", "Keys", "/keys"),
    ("audit", "Audit log", "/audit"),
)


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3 min ago``, ``in 2 h``: a time as people say it."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    later = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        text = f"{int(seconds)} s"
    elif seconds < 2700:
        text = f"{round(seconds / 60)} min"
    elif seconds < 36 * 3600:
        text = f"{round(seconds / 3600)} h"
    else:
        text = f"{round(seconds / 86400)} d"
    return f"in {text}" if later else f"{text} ago"


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``3 min 5 s``, ``2 h 10 min``."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def timestamp(value: datetime | None) -> Markup:
    """A ``<time>`` with the exact UTC time in its title and ``ago`` as its text."""
    if value is None:
        return Markup("—")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    exact = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        value.isoformat(), exact, ago(value)
    )


def to_json(value: Any) -> Markup:
    """``value`` as JSON that is safe inside a ``<script type="application/json">``."""
    text = json.dumps(value, default=str, sort_keys=True)
    escaped = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(escaped)  # noqa: S704 - every character that could end the script is escaped


def pretty(value: Any) -> str:
    return json.dumps(value, default=str, indent=2, sort_keys=True)


environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
environment.filters.update(
    ago=ago, duration=duration, timestamp=timestamp, tojson_safe=to_json, pretty=pretty, quote=quote
)
environment.globals.update(nav=NAV, version=__version__)


@dataclass(frozen=True)
class Viewer:
    """The signed-in person on a page: their session's principal and the project in view."""

    principal: Principal
    project: str
    state: AppState
    request: Request

    @property
    def projects(self) -> list[str]:
        if self.principal.project is not None:
            return [self.principal.project]
        return [p.name for p in project_routes.projects(self.state, self.principal)]

    def can(self, scope: str) -> bool:
        return scope in self.principal.granted

    def can_run_code(self, project: str) -> bool:
        """Whether the signed-in key may make the control plane run pipeline code in
        ``project`` (schedules, resumes there): write, and deploy-code or a project that
        trusts code."""
        if not self.can("write"):
            return False
        if self.can("deploy-code"):
            return True
        return project_routes.one_project(project, self.state, self.principal).trust_code


class SignInRequired(Exception):
    """Raised by ``viewer`` for a page opened without a session: a redirect to /signin."""

    def __init__(self, next_path: str, reason: str = "") -> None:
        self.next_path = next_path
        self.reason = reason


def viewer(request: Request) -> Viewer:
    """The dependency of every page: the session from the cookie (else off to /signin), and
    the project in view (``?project=``, else the key's own), which the session must be able to
    read. A project the key cannot see is a 404, the REST API's answer for a project that does
    not exist, so no page ever runs for another project's names."""
    who = _signed_in(request)
    who.principal.require("read", who.project)
    return who


def _signed_in(request: Request) -> Viewer:
    """The session from the cookie and the project asked for, not checked yet."""
    state = get_state(request)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    text = request.cookies.get(SESSION_COOKIE)
    if not text:
        raise SignInRequired(target)
    client_ip = request.client.host if request.client else None
    try:
        with state.db.read() as session:
            principal, _ = check_key(session, text, client_ip=client_ip)
        principal.check_address(client_ip)
    except FunadeError as exc:
        raise SignInRequired(target, exc.message) from None
    project = request.query_params.get("project") or principal.project or DEFAULT_PROJECT
    return Viewer(principal=principal, project=project, state=state, request=request)


Signed = Annotated[Viewer, Depends(viewer)]


def render(
    viewer: Viewer | None,
    template: str,
    *,
    request: Request,
    section: str = "",
    title: str = "",
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = environment.get_template(template).render(
        viewer=viewer,
        request=request,
        section=section,
        title=title,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


SECURITY_HEADERS = {
    # Scripts and styles only from this server; no framing (clickjacking); no referrer leaks.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def error_page(request: Request, error: FunadeError) -> HTMLResponse:
    """A domain error as a page: what went wrong and how to fix it, in plain words."""
    status = status_for(error)
    try:
        who: Viewer | None = _signed_in(request)
    except SignInRequired:
        who = None
    if who is not None and not who.principal.can_see(who.project):
        # The header shows the key's own project, never the name it asked for.
        who = replace(who, project=who.principal.project or DEFAULT_PROJECT)
    return render(
        who,
        "error.html",
        request=request,
        title="Something went wrong" if status >= 500 else "That did not work",
        error=error,
        status_code=status,
    )


def sign_in_redirect(exc: SignInRequired) -> RedirectResponse:
    target = "/signin?next=" + quote(exc.next_path, safe="")
    if exc.reason:
        target += "&reason=" + quote(exc.reason, safe="")
    return RedirectResponse(target, status_code=303)


def is_page(request: Request) -> bool:
    """Whether the request is for a dashboard page (not the API), so errors become pages."""
    path = request.url.path
    return not path.startswith(("/api/", "/graphql", "/metrics", "/healthz", "/docs"))


__all__ = [
    "STATIC",
    "AuthenticationError",
    "SignInRequired",
    "Signed",
    "Viewer",
    "error_page",
    "render",
    "viewer",
]
