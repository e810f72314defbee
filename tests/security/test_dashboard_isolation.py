"""A key of one project sees nothing of another project's, through the dashboard as through the
REST API (issue 17, part 4).

The attack: a read key of project ``default``, signed in to the dashboard, opened
``/models?project=rival`` and saw rival's models, aliases, versions and metrics, because the pages
called the REST route functions directly, and the scope check lived only in the routes' FastAPI
dependency. Now every route function checks the project itself, the pages' ``viewer`` checks the
project in view, and the dashboard's own reads (``ui/reads.py``) check it too.

The sweep visits every page and every dashboard data route (the REST GET routes the pages'
scripts call with the session cookie), enumerated from the app itself, with rival's names:
each answers 404, as the REST API does for a project the key cannot see. A route added without a
sample value for its parameters fails the sweep, so it keeps covering everything.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request

import funade
from funade.api.app import create_app
from funade.api.schemas import RunEventsIn, RunIn, ScheduleIn, StepRecord
from funade.api.state import AppState
from funade.artifacts import ArtifactStore
from funade.auth.principal import Principal
from funade.client import Client
from funade.errors import NotFoundError
from funade.settings import Settings
from funade.store import Database
from funade.ui import pages as ui_pages
from funade.ui import reads
from funade.ui.web import Viewer
from tests.serving.models import Arithmetic

RIVAL = "rival"
SECRET = "rival-secret-7f3a"
"""Written into rival's descriptions, tags, params and metrics: it must never reach the
other project's key (names it asked for may be echoed in a 404; data never is)."""
CACHE_KEY = "sha256:" + "c" * 64
PUBLIC = {"/healthz", "/api/v1/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
SIGN_IN = {"/signin"}
"""The sign-in page: open to all, it shows no project's data."""
NO_PROJECT = {"/api/v1/whoami", "/api/v1/projects", "/metrics", "/graphql"}
"""GET routes that take no project at all: they answer for the key's own project (or nothing),
so they must answer 200 without a word of rival's."""


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI >= 0.16x includes routers lazily
            yield from _routes(route.original_router.routes)


def _is_page(route: APIRoute) -> bool:
    return not route.include_in_schema and not route.path.startswith(("/api/", "/graphql"))


def _required_scope(route: APIRoute) -> str:
    """The scope the route's own dependency demands (``scoped``/``granted``); pages need read."""
    for dependency in route.dependant.dependencies:
        scope = getattr(dependency.call, "required_scope", None)
        if scope is not None:
            return str(scope)
    return "read"


@dataclass
class Rival:
    """What exists in project ``rival``: one of everything a page or data route can name."""

    sample: dict[str, str]
    """Path parameter → a rival thing's name (every parameter any GET route has)."""


@pytest.fixture
def rival(admin: Client, app_url: str, admin_key: str, settings: Settings) -> Iterator[Rival]:
    admin.create_project(RIVAL, description=SECRET)
    with Client(url=app_url, api_key=admin_key, project=RIVAL, settings=settings) as owner:
        version = funade.log_model(
            Arithmetic(),
            "rival-model",
            sample_input={"x": np.array([[1.0, 2.0]])},
            client=owner,
            progress=False,
            description=SECRET,
            metrics={"auc": 0.917},
            params={"secret": SECRET},
            tags={"team": SECRET},
            alias="rival-alias",
        )
        owner.update_model("rival-model", description=SECRET)
        owner.create_deployment("rival-model", name=RIVAL, version="1", description=SECRET)
        schedule = owner.create_schedule(
            ScheduleIn(
                name=RIVAL, source="rival.flows:train", cron="0 3 * * *", params={"s": SECRET}
            )
        )
        run = owner.create_run(
            RunIn(
                pipeline="rival-pipeline",
                spec={"name": "rival-pipeline", "nodes": [{"id": "train", "function": "m:t"}]},
                params={"secret": SECRET},
            )
        )
        assert run.token is not None
        runner = owner.with_key(run.token)
        runner.report_run(
            run.id,
            RunEventsIn(
                steps=[
                    StepRecord(
                        instance="train",
                        node="train",
                        state="succeeded",
                        cache_key=CACHE_KEY,
                        cache_write=True,
                        outputs={"secret": SECRET},
                    )
                ]
            ),
        )
        assert runner.cache_lookup(CACHE_KEY) is not None
        runner.close()
        assert owner.list_schedules()[0].name == schedule.name
        yield Rival(
            sample={
                "project": RIVAL,
                "model": "rival-model",
                "ref": "rival-alias",
                "number": "1",
                "alias": "rival-alias",
                "name": RIVAL,  # the deployment and the schedule are both called rival
                "run_id": str(run.id),
                "digest": version.artifact.digest,
                "key": CACHE_KEY,
            }
        )


@contextmanager
def _signed(app_url: str, key: str) -> Iterator[httpx.Client]:
    """An HTTP client holding a dashboard session signed in with ``key``."""
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        signed = http.post("/signin", data={"key": key, "next": "/"})
        assert signed.status_code == 303, signed.text
        yield http


def _get_routes(app: FastAPI) -> list[APIRoute]:
    return sorted(
        (
            route
            for route in _routes(app.routes)
            if route.methods & {"GET", "HEAD"}
            and route.path not in PUBLIC
            and route.path not in SIGN_IN
        ),
        key=lambda r: r.path,
    )


def _fill(path: str, sample: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in sample, (
            f"{path}: no sample value for {{{name}}}; add one of rival's {name}s to the "
            "`rival` fixture so this route is swept too"
        )
        return sample[name]

    return re.sub(r"{(\w+)}", value, path)


@pytest.mark.parametrize("scopes", [["read"], ["admin"]])
def test_every_page_and_data_route_is_a_404_for_another_projects_names(
    app_url: str,
    settings: Settings,
    database: Database,
    rival: Rival,
    admin: Client,
    scopes: list[str],
) -> None:
    """Signed in with a key of project default, every GET page and data route, with rival's
    names in its path or ``?project=rival``: 404 (or 403 where the key lacks the route's scope
    altogether), and no response holds a byte of rival's data."""
    key = admin.create_key("default-" + "-".join(scopes), scopes, project="default").key
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    routes = _get_routes(app)
    paths = {r.path for r in routes}
    assert {"/", "/models", "/models/{model}", "/models/{model}/versions/{number}"} <= paths
    assert {"/deployments/{name}", "/runs/{run_id}", "/schedules", "/keys", "/audit"} <= paths
    assert "/api/v1/projects/{project}/models/{model}/aliases/{alias}" in paths
    visited: list[tuple[str, str, int]] = []
    with _signed(app_url, key) as http:
        own = http.get("/models?project=default")  # the session works for its own project
        assert own.status_code == 200, own.text
        for route in routes:
            method = "GET" if "GET" in route.methods else "HEAD"
            path = _fill(route.path, rival.sample)
            targets: list[str] = []
            if route.path in NO_PROJECT:
                response = http.request(method, path + "?project=" + RIVAL)
                assert response.status_code == 200, (path, response.text)
                assert RIVAL not in response.text, (path, response.text)
                continue
            if "{" in route.path:
                targets.append(path)  # rival's names, in the key's own project (or by id)
            if _is_page(route) or "{project}" not in route.path:
                separator = "&" if "?" in path else "?"
                targets.append(f"{path}{separator}project={RIVAL}")
            lacks_scope = _required_scope(route) not in key_scopes(scopes)
            for target in targets:
                response = http.request(method, target)
                visited.append((method, target, response.status_code))
                assert SECRET not in response.text, (target, response.text)
                if lacks_scope and not _is_page(route):
                    assert response.status_code == 403, (target, response.text)
                    assert response.json()["error"]["field"] == "scope"
                    continue
                assert response.status_code == 404, (target, response.status_code, response.text)
                if method == "HEAD":
                    continue
                if _is_page(route):
                    assert response.headers["content-type"].startswith("text/html")
                    assert "does not exist" in response.text, (target, response.text)
                else:
                    error = response.json()["error"]
                    assert error["code"] == "not_found", (target, error)
                    assert "does not exist" in error["message"] or "has no" in error["message"]
    pages = [v for v in visited if not v[1].startswith("/api/")]
    assert len(pages) >= 14, visited  # every page, by name and by ?project=
    assert len(visited) >= 30, visited


def key_scopes(scopes: list[str]) -> frozenset[str]:
    return Principal(key_id=None, name="x", scopes=frozenset(scopes), project="default").granted


def test_a_foreign_project_in_view_is_a_404_page_that_names_nothing_of_it(
    app_url: str, rival: Rival, admin: Client
) -> None:
    """The header of the error page shows the key's own project, not the one asked for."""
    key = admin.create_key("reader", ["read"], project="default").key
    with _signed(app_url, key) as http:
        response = http.get(f"/models?project={RIVAL}")
        assert response.status_code == 404
        assert "Project &#39;rival&#39; does not exist." in response.text
        assert "rival-model" not in response.text
        assert 'value="rival"' not in response.text  # not offered in the project selector
        again = http.get(f"/models/rival-model/versions/1?project={RIVAL}")
        assert again.status_code == 404
        assert "rival-model" not in again.text.replace("/models/rival-model", "")
        assert SECRET not in again.text


def _graphql(http: httpx.Client, query: str) -> dict[str, Any]:
    response = http.post("/graphql", json={"query": query}, headers={"x-funade-ui": "1"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert SECRET not in response.text, response.text
    return body


def test_graphql_from_the_dashboard_session_sees_nothing_of_another_project(
    app_url: str, rival: Rival, admin: Client
) -> None:
    key = admin.create_key("writer", ["write"], project="default").key
    run_id = rival.sample["run_id"]
    queries = {
        "models": f'{{ models(project: "{RIVAL}") {{ name description }} }}',
        "model": f'{{ model(name: "rival-model", project: "{RIVAL}") {{ name }} }}',
        "version": (
            f'{{ version(model: "rival-model", ref: "rival-alias", project: "{RIVAL}") '
            "{ metrics params }}"
        ),
        "deployments": f'{{ deployments(project: "{RIVAL}") {{ name }} }}',
        "deployment": f'{{ deployment(name: "{RIVAL}") {{ description }} }}',
        "runs": f'{{ runs(project: "{RIVAL}") {{ id params }} }}',
        "run": f"{{ run(id: {run_id}) {{ params }} }}",
        "schedules": f'{{ schedules(project: "{RIVAL}") {{ name params }} }}',
        "setAlias": (
            f'mutation {{ setAlias(model: "rival-model", alias: "mine", version: 1, '
            f'project: "{RIVAL}") {{ alias }} }}'
        ),
        "setTraffic": (
            f'mutation {{ setTraffic(deployment: "{RIVAL}", weights: '
            "[{revision: 1, percent: 100}]) { name } }"
        ),
    }
    with _signed(app_url, key) as http:
        for field, query in queries.items():
            body = _graphql(http, query)
            assert body["data"] is None, (field, body)
            (error,) = body["errors"]
            assert error["extensions"]["code"] == "not_found", (field, error)
            assert "does not exist" in error["message"], (field, error)
        projects = _graphql(http, "{ projects { name models { name } } }")
        assert projects["data"]["projects"] == [{"name": "default", "models": []}]


def _principal_of_another_project(scopes: frozenset[str]) -> Principal:
    return Principal(key_id=None, name="other", scopes=scopes, project="default")


def _call(function: Callable[..., Any], **arguments: Any) -> Any:
    result = function(**arguments)
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    return result


def test_every_route_function_with_a_project_checks_it_itself(
    settings: Settings, database: Database, rival: Rival
) -> None:
    """The class of the bug: the pages and GraphQL call route functions with no FastAPI
    dependency in between. Each route function that takes a ``project`` (in its path or its
    query) must refuse a project its key cannot see by itself: called directly with an admin of
    project default and rival's names, each raises the 404 of a project that does not exist."""
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    state: AppState = app.state.funade
    principal = _principal_of_another_project(frozenset({"admin"}))
    checked = set()
    for route in _routes(app.routes):
        parameters = inspect.signature(route.endpoint).parameters
        if "project" not in parameters or "principal" not in parameters:
            continue
        arguments: dict[str, Any] = {}
        for name, parameter in parameters.items():
            if name == "principal":
                arguments[name] = principal
            elif name == "state":
                arguments[name] = state
            elif name in rival.sample:
                arguments[name] = rival.sample[name]
            elif parameter.default is not inspect.Parameter.empty:
                arguments[name] = parameter.default
            else:
                arguments[name] = None  # a body or the request: never reached
        with pytest.raises(NotFoundError) as caught:
            _call(route.endpoint, **arguments)
        assert caught.value.field == "project", (route.path, caught.value)
        assert caught.value.message == f"Project {RIVAL!r} does not exist.", route.path
        checked.add((route.endpoint.__module__, route.endpoint.__name__))
    modules = {module.rsplit(".", 1)[-1] for module, _ in checked}
    assert {"models", "versions", "artifacts", "runs", "schedules", "projects"} <= modules
    assert {"deployments", "keys", "audit"} <= modules  # ?project= in the query
    assert len(checked) >= 30, sorted(checked)


def test_every_dashboard_read_checks_the_project_itself(
    settings: Settings, database: Database, rival: Rival
) -> None:
    """``ui/reads.py``, the pages' reads that no REST route answers: each, given rival's name
    with a viewer of project default, raises the 404 of a project that does not exist."""
    state = AppState(
        settings=settings, db=database, artifacts=ArtifactStore.from_settings(settings)
    )
    request = Request({"type": "http", "method": "GET", "headers": [], "query_string": b""})
    viewer = Viewer(
        principal=_principal_of_another_project(frozenset({"admin"})),
        project="default",
        state=state,
        request=request,
    )
    samples: dict[str, Any] = {
        "project": RIVAL,
        "schedule_id": 1,
        "run_id": int(rival.sample["run_id"]),
        "ids": {"000000000000"},
    }
    checked = []
    for name in reads.__all__:
        function = getattr(reads, name)
        parameters = inspect.signature(function).parameters
        if "project" not in parameters:
            assert name == "signed_with", f"reads.{name} takes no project: how is it scoped?"
            continue
        arguments = {p: samples[p] for p in parameters if p != "viewer"}
        with pytest.raises(NotFoundError) as caught:
            function(viewer, **arguments)
        assert caught.value.field == "project", name
        checked.append(name)
    public = {
        n
        for n, f in vars(reads).items()
        if inspect.isfunction(f) and f.__module__ == reads.__name__ and not n.startswith("_")
    }
    assert public == set(reads.__all__), "every read is listed (and so checked)"
    assert len(checked) == len(reads.__all__) - 1


def test_no_page_reads_the_store_by_itself() -> None:
    """Pages read through the REST route functions and ``ui/reads.py`` only: a page module that
    imports SQLAlchemy or a table could run a ``select()`` that skips the project check."""
    folder = Path(ui_pages.__file__).parent
    modules = sorted(folder.glob("*.py"))
    assert len(modules) >= 7
    for module in modules:
        tree = ast.parse(module.read_text(), filename=str(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                if node.module == "funade.store.schema":
                    imported = {alias.name for alias in node.names}
                    assert imported <= {"utcnow"}, (module.name, imported)
                    continue
            else:
                continue
            for name in names:
                assert not name.startswith("sqlalchemy"), (module.name, name)
                assert name not in ("funade.store", "funade.store.engine"), (module.name, name)
