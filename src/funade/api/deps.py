"""FastAPI dependencies: the app state, and the principal with the scope a route needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from funade.api.state import AppState
from funade.auth.principal import ModelAction, Principal, Scope
from funade.auth.service import check_key, touch_key
from funade.errors import AuthenticationError, PermissionDeniedError


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.funade
    return state


State = Annotated[AppState, Depends(get_state)]


SESSION_COOKIE = "funade_session"
"""The dashboard's sign-in: a session key (``ui/session.py``), HttpOnly and SameSite=Strict."""
UI_HEADER = "x-funade-ui"
"""Sent by the dashboard's scripts with every change. A cookie rides along on any request to
this host, but another site's page cannot add a custom header without a CORS preflight, which
this API never answers: so a change authorised by the cookie alone is refused (CSRF)."""
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        if request.method not in _SAFE and request.headers.get(UI_HEADER) != "1":
            raise PermissionDeniedError(
                "A change signed in by the dashboard's cookie must come from the dashboard.",
                field="headers",
                value=UI_HEADER,
                fix=f"Send the key as `Authorization: Bearer fnd_...`, or the `{UI_HEADER}: 1` "
                "header from the dashboard's own pages.",
            )
        return cookie
    raise AuthenticationError(
        "This endpoint needs an API key.",
        fix="Send it as `Authorization: Bearer fnd_...` (funade up stored one in "
        "$FUNADE_HOME/credentials; `funade keys create` makes more).",
    )


PRINCIPAL_KEY = "funade.principal"
"""Where the request's scope keeps the principal once its key is checked (by
``middleware.authfirst``, before the body is read), so it is checked once per request."""


def current_principal(request: Request, state: State) -> Principal:
    checked: Principal | None = request.scope.get(PRINCIPAL_KEY)
    if checked is not None:
        return checked
    text = _bearer(request)
    client_ip = request.client.host if request.client else None
    with state.db.read() as session:
        principal, stale = check_key(session, text, client_ip=client_ip)
    principal.check_address(client_ip)
    if stale and principal.key_id is not None:
        # At most once a minute per key, so most requests stay read-only.
        with state.db.session() as session:
            touch_key(session, principal.key_id)
    request.scope[PRINCIPAL_KEY] = principal
    return principal


def scoped(scope: Scope) -> Callable[..., Principal]:
    """A dependency that authenticates and requires ``scope`` in the path's project (if any)."""

    def dependency(
        request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        project = request.path_params.get("project")
        if project is not None:
            principal.require(scope, project)
        elif scope not in principal.granted:
            principal.require(scope, principal.project)
        return principal

    dependency.required_scope = scope  # type: ignore[attr-defined]
    return dependency


def granted(scope: Scope) -> Callable[..., Principal]:
    """A dependency for routes whose project comes from the row they touch (deployments): the
    key must hold ``scope`` at all; the route checks the row's project. It runs before the body
    is read, so a key without the scope learns nothing more."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if scope not in principal.granted:
            principal.require(scope, principal.project)
        return principal

    dependency.required_scope = scope  # type: ignore[attr-defined]
    return dependency


def acting(action: ModelAction) -> Callable[..., Principal]:
    """A dependency for routes that register versions of a model, or deploy it: the key needs
    the write scope in the project, or (a run's token) the ``register:<model>`` /
    ``deploy:<model>`` grant for the path's model. Where the model comes from the body or the
    row, the route checks it (``Principal.require_model``); this refuses, before the body is
    read, keys that could not do it for any model."""

    def dependency(
        request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        project = request.path_params.get("project")
        model = request.path_params.get("model")
        if project is not None and model is not None:
            principal.require_model(action, project, model)
        elif not any(grant.startswith(f"{action}:") for grant in principal.grants):
            if project is not None:
                principal.require("write", project)
            elif "write" not in principal.granted:
                principal.require("write", principal.project)
        elif project is not None and not principal.can_see(project):
            principal.require("read", project)  # the 404 of a project it cannot see
        return principal

    dependency.required_scope = "write"  # type: ignore[attr-defined]
    return dependency


Reader = Annotated[Principal, Depends(scoped("read"))]
Writer = Annotated[Principal, Depends(scoped("write"))]
Admin = Annotated[Principal, Depends(scoped("admin"))]
Uploader = Annotated[Principal, Depends(scoped("upload"))]
"""Artifact uploads: write keys, and runs' tokens (which store their steps' outputs)."""
Registrar = Annotated[Principal, Depends(acting("register"))]
"""Registering versions and moving aliases: write keys, or runs granted ``register:<model>``."""
Deployer = Annotated[Principal, Depends(acting("deploy"))]
"""Deploying: write keys, or runs granted ``deploy:<model>``."""
