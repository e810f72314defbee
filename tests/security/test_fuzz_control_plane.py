"""The control plane's OpenAPI document, fuzzed against a real server (tests/security/fuzzing.py):
with an admin key, every operation answers a documented status (never a 5xx, never a dropped
connection) with a body of its documented schema; without a key, every keyed operation answers
401 whatever its parameters and body (the key is checked before the body is read).

The document is built when this module is collected (schemathesis makes one test per operation
from it then) from an app over an empty store, and checked to be the one the real server serves.

Nothing is excluded: the admin run may delete the seeded model, deployment or schedule (later
requests then find nothing, which is a documented 404), and revoking a key needs its id, which
the fuzzer cannot guess, so the admin key it uses stays valid.

The tests are in three classes so that pytest-xdist (``--dist loadscope``) spreads them over
both workers, each class with its own server.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.schemas import APIOperation

import funade
from funade.api.app import create_app
from funade.api.schemas import RunIn, ScheduleIn
from funade.artifacts import ArtifactStore
from funade.bootstrap import bootstrap
from funade.client import Client
from funade.settings import Settings
from funade.store import create_database, upgrade
from tests.security import fuzzing
from tests.servers import serve
from tests.serving.models import Arithmetic

BLOB = b"a blob the fuzzer may read back"
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
KNOWN = {
    "project": ["default"],
    "model": ["calc"],
    "ref": ["1", "production", "latest"],
    "number": ["1"],
    "alias": ["production", "staging"],
    "name": ["calc", "nightly"],
    "action": ["promote", "abort"],
    "digest": [DIGEST],
}
"""Path parameters' values that exist in the seeded store (used for three requests in four)."""


def _document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", database_url="sqlite://")
        db = create_database(settings.resolved_database_url)
        try:
            return create_app(settings, db, ArtifactStore.from_settings(settings)).openapi()
        finally:
            db.dispose()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=fuzzing.config(**KNOWN))
REGISTRY = {"projects", "models", "versions", "artifacts"}


class Plane:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.admin = {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="class")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """A control plane on SQLite with one of everything: the model ``calc`` (version 1, alias
    ``production``), a deployment of it, an uploaded blob, a pipeline run and a schedule."""
    home: Path = tmp_path_factory.mktemp("fuzz") / "home"
    settings = Settings(home=home, database_url=f"sqlite:///{home.parent / 'funade.db'}")
    db = create_database(settings.resolved_database_url)
    upgrade(db)
    key = bootstrap(settings, db).admin_key
    app = create_app(settings, db, ArtifactStore.from_settings(settings))
    with serve(app) as url, Client(url=url, api_key=key, settings=settings) as client:
        assert httpx.get(f"{url}/openapi.json").json() == DOCUMENT
        sample = {"x": np.array([[1.0, 2.0], [3.0, 4.0]])}
        funade.log_model(
            Arithmetic(),
            "calc",
            sample_input=sample,
            alias="production",
            client=client,
            progress=False,
        )
        client.create_deployment("calc")
        uploaded = httpx.put(
            f"{url}/api/v1/projects/default/artifacts/{DIGEST}",
            content=BLOB,
            headers={"authorization": f"Bearer {key}"},
        )
        assert uploaded.status_code == 200, uploaded.text
        client.create_run(RunIn(pipeline="training", spec={}, state="succeeded"))
        client.create_schedule(
            ScheduleIn(
                name="nightly", source="/nowhere/train.py:training", cron="0 3 * * *", paused=True
            )
        )
        yield Plane(url, key)
    db.dispose()


def _as_admin(self: object, case: Case, plane: Plane) -> None:
    case.call_and_validate(base_url=plane.url, headers=plane.admin, checks=fuzzing.CHECKS)


PUBLIC = {("GET", "/api/v1/health"), ("GET", "/healthz"), ("GET", "/graphql")}
"""The operations that need no key."""


def _without_key(self: object, case: Case, plane: Plane) -> None:
    response = case.call_and_validate(base_url=plane.url, checks=fuzzing.CHECKS)
    documented = case.method.upper() == case.operation.method.upper()
    if documented and (case.method.upper(), case.operation.path) not in PUBLIC:
        assert response.status_code == 401, (case.method, case.formatted_path, response.text)


class TestRegistryAsAdmin:
    """projects, models, versions and artifacts."""


class TestOperationsAsAdmin:
    """keys, the audit log, deployments, pipelines, metrics and GraphQL."""


class TestWithoutKey:
    """Every operation: a 401 wherever a key is needed."""


def _registry(operation: APIOperation) -> bool:
    return bool(set(operation.tags or ()) & REGISTRY)


fuzzing.one_test_per_operation(TestRegistryAsAdmin, schema, _as_admin, _registry)
fuzzing.one_test_per_operation(
    TestOperationsAsAdmin, schema, _as_admin, lambda operation: not _registry(operation)
)
fuzzing.one_test_per_operation(TestWithoutKey, schema, _without_key)
