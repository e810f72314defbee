"""GraphQL at /graphql: the REST data in one query, with the same keys, scopes and errors."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import funade
from funade.api.schemas import RunIn
from funade.client import Client
from tests.models import logistic_regression, sample


def ask(url: str, key: str | None, query: str, **variables: Any) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_models_versions_lineage_and_runs_in_one_query(
    admin: Client, app_url: str, admin_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = admin.create_run(RunIn(pipeline="training", spec={"name": "training"}, params={"c": 1}))
    monkeypatch.setenv("FUNADE_RUN_ID", str(run.id))
    monkeypatch.setenv("FUNADE_RUN_STEP", "register")
    funade.log_model(
        logistic_regression(), "churn", sample_input=sample(), client=admin, metrics={"auc": 0.9}
    )
    monkeypatch.delenv("FUNADE_RUN_ID")
    funade.log_model(logistic_regression(), "churn", sample_input=sample(), client=admin)
    admin.set_alias("churn", "production", 1)
    body = ask(
        app_url,
        admin_key,
        """
        query ($model: String!) {
          projects { name models { name } }
          model(name: $model) {
            name latestVersion aliases { alias version }
            versions(limit: 5) { version metrics run { id pipeline params } }
            version(ref: "production") { version artifact { digest } lineage }
          }
          runs { id state }
        }
        """,
        model="churn",
    )
    assert "errors" not in body, body
    data = body["data"]
    assert data["projects"] == [{"name": "default", "models": [{"name": "churn"}]}]
    model = data["model"]
    assert model["latestVersion"] == 2
    assert model["aliases"] == [{"alias": "production", "version": 1}]
    assert model["versions"] == [
        {"version": 2, "metrics": {}, "run": None},
        {
            "version": 1,
            "metrics": {"auc": 0.9},
            "run": {"id": run.id, "pipeline": "training", "params": {"c": 1}},
        },
    ]
    assert model["version"]["version"] == 1
    assert model["version"]["lineage"]["run"]["step"] == "register"
    assert data["runs"] == [{"id": run.id, "state": "running"}]


def test_a_mutation_goes_through_the_rest_route_and_is_audited(
    admin: Client, app_url: str, admin_key: str
) -> None:
    funade.log_model(logistic_regression(), "churn", sample_input=sample(), client=admin)
    body = ask(
        app_url,
        admin_key,
        'mutation { setAlias(model: "churn", alias: "staging", version: 1) { alias version } }',
    )
    assert body["data"] == {"setAlias": {"alias": "staging", "version": 1}}
    assert admin.list_aliases("churn")[0].alias == "staging"
    events = admin.audit(action="alias.set").items
    assert [e.target for e in events] == ["churn@staging"]


def test_errors_carry_the_code_field_and_fix(
    admin: Client, app_url: str, admin_key: str, key_for: Callable[..., Client]
) -> None:
    body = ask(app_url, admin_key, '{ model(name: "nope") { name } }')
    (error,) = body["errors"]
    assert error["message"].startswith("Model 'nope' does not exist")
    assert error["extensions"]["code"] == "not_found"
    assert error["path"] == ["model"]

    body = ask(app_url, admin_key, 'mutation { rollback(deployment: "ghost") { id } }')
    assert body["errors"][0]["extensions"]["code"] == "not_found"

    response = httpx.post(f"{app_url}/graphql", json={"query": "{ projects { name } }"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"

    reader = key_for(["read"])
    token = reader._http.headers["authorization"].removeprefix("Bearer ")
    funade.log_model(logistic_regression(), "churn", sample_input=sample(), client=admin)
    body = ask(
        app_url, token, 'mutation { setAlias(model: "churn", alias: "x", version: 1) { alias } }'
    )
    assert body["errors"][0]["extensions"]["code"] == "permission_denied"
    assert ask(app_url, token, '{ model(name: "churn") { name } }')["data"] == {
        "model": {"name": "churn"}
    }

    admin.create_project("other")
    outsider = key_for(["read"], project="other")
    token = outsider._http.headers["authorization"].removeprefix("Bearer ")
    body = ask(app_url, token, '{ models(project: "default") { name } }')
    assert body["errors"][0]["extensions"]["code"] == "not_found"

    body = ask(app_url, admin_key, "{ models { nosuchfield } }")
    assert "Cannot query field 'nosuchfield'" in body["errors"][0]["message"]


def test_the_explorer_page_loads_without_a_key_or_the_internet(app_url: str) -> None:
    page = httpx.get(f"{app_url}/graphql")
    assert page.status_code == 200
    assert "unpkg.com" not in page.text
    pairs = re.findall(r'(?:src|href)="(/static/graphiql/[^"]+)"\s+integrity="([^"]+)"', page.text)
    assert len(pairs) == 7
    for path, integrity in pairs:  # the vendored bytes are the ones the page's hashes expect
        asset = httpx.get(f"{app_url}{path}")
        assert asset.status_code == 200, path
        digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
        assert integrity == f"sha384-{digest}", path
