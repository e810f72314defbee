"""Every route except health needs a key with the right scope: enumerated from the app itself."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.client import Client
from funade.settings import Settings
from funade.store import Database

PUBLIC = {"/healthz", "/api/v1/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
DIGEST = "sha256:" + "0" * 64
SAMPLE = {
    "project": "default",
    "model": "churn",
    "ref": "1",
    "number": "1",
    "alias": "production",
    "digest": DIGEST,
    "key_id": "000000000000",
    "name": "calc",
    "action": "promote",
    "run_id": "1",
    "key": "sha256:" + "1" * 64,
}
READ_ONLY = {"GET", "HEAD"}
# POSTs that change nothing by themselves (GraphQL checks each mutation's scope: test_graphql.py)
QUERIES = {"/api/v1/projects/default/pipeline-cache/lookup", "/graphql"}
EXPLORERS = {("GET", "/graphql")}  # pages a browser opens without a key; they hold no data
SIGN_IN = {"/signin", "/signout"}  # the dashboard's own sign-in, open to all


def _is_page(route: APIRoute) -> bool:
    """A dashboard page (``funade.ui``): signed in by the session cookie, not by a key."""
    return not route.include_in_schema and not route.path.startswith(("/api/", "/graphql"))


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI >= 0.16x includes routers lazily
            yield from _api_routes(route.original_router.routes)


def _templates(settings: Settings, database: Database) -> set[tuple[str, str]]:
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    return {
        (method, route.path)
        for route in _api_routes(app.routes)
        if route.path not in PUBLIC and not _is_page(route)
        for method in route.methods
        if (method, route.path) not in EXPLORERS
    }


def _pages(settings: Settings, database: Database) -> list[tuple[str, str]]:
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    return sorted(
        (method, re.sub(r"{(\w+)}", lambda m: SAMPLE[m.group(1)], route.path))
        for route in _api_routes(app.routes)
        if _is_page(route) and route.path not in SIGN_IN
        for method in route.methods
    )


def _routes(settings: Settings, database: Database) -> list[tuple[str, str]]:
    return sorted(
        (method, re.sub(r"{(\w+)}", lambda m: SAMPLE[m.group(1)], path))
        for method, path in _templates(settings, database)
    )


def test_enumeration_covers_every_documented_route(settings: Settings, database: Database) -> None:
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if path not in PUBLIC and (method.upper(), path) not in EXPLORERS
    }
    found = _templates(settings, database)
    assert len(found) >= 20
    assert documented <= found, documented - found


def test_every_route_needs_a_key(app_url: str, settings: Settings, database: Database) -> None:
    with httpx.Client(base_url=app_url) as http:
        for method, path in _routes(settings, database):
            response = http.request(method, path)
            assert response.status_code == 401, (method, path, response.text)
            if method != "HEAD":
                assert response.json()["error"]["code"] == "unauthenticated"
            bad = http.request(
                method, path, headers={"authorization": "Bearer fnd_123456789012_nope"}
            )
            assert bad.status_code == 401, (method, path, bad.text)


def test_every_page_needs_a_session(
    app_url: str, admin_key: str, settings: Settings, database: Database
) -> None:
    """Pages go to the sign-in page without a session cookie, even given a key in a header
    (a browser never sends one); they come back after signing in."""
    pages = _pages(settings, database)
    assert ("GET", "/") in pages
    with httpx.Client(base_url=app_url) as http:
        for method, path in pages:
            for headers in ({}, {"authorization": f"Bearer {admin_key}"}):
                response = http.request(method, path, headers=headers)
                assert response.status_code == 303, (method, path, response.text)
                assert response.headers["location"].startswith("/signin?next="), (method, path)
        http.cookies.set("funade_session", "fnd_123456789012_nope")
        response = http.get("/")
        assert response.status_code == 303
        assert "reason=" in response.headers["location"]


def test_predict_keys_cannot_use_the_control_plane(
    app_url: str, settings: Settings, database: Database, key_for: Callable[..., Client]
) -> None:
    predict = key_for(["predict"])
    headers = dict(predict._http.headers)
    with httpx.Client(base_url=app_url, headers=headers) as http:
        for method, path in _routes(settings, database):
            response = http.request(method, path)
            assert response.status_code == 403, (method, path, response.text)


def test_read_keys_cannot_mutate(
    app_url: str, settings: Settings, database: Database, key_for: Callable[..., Client]
) -> None:
    reader = key_for(["read"])
    headers = dict(reader._http.headers)
    with httpx.Client(base_url=app_url, headers=headers) as http:
        for method, path in _routes(settings, database):
            if method in READ_ONLY and not path.startswith(("/api/v1/keys", "/api/v1/audit")):
                continue
            if path in QUERIES:
                continue
            response = http.request(method, path, json={})
            assert response.status_code == 403, (method, path, response.text)


def test_health_needs_no_key(app_url: str) -> None:
    response = httpx.get(f"{app_url}/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_key_accepted_in_either_header(app_url: str, admin_key: str, header: str) -> None:
    value = f"Bearer {admin_key}" if header == "authorization" else admin_key
    response = httpx.get(f"{app_url}/api/v1/whoami", headers={header: value})
    assert response.status_code == 200
    assert response.json()["scopes"] == ["admin"]
