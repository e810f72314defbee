"""A predict key limited to one deployment (what `funade deploy` and ``log_model(...,
deploy=True)`` make and print): the gateway refuses it for every other deployment of its
project, by either protocol and on the try-it page; the control plane refuses it everything;
and it is revoked with its deployment."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from funade.gateway.app import Gateway
from funade.store import Database
from tests.deploy.conftest import Plane, calc, plane  # noqa: F401 - shared fixtures
from tests.security.test_weak_points import BODY, bearer, error_of
from tests.servers import serve_gateway_app


@pytest.fixture
def gateway(calc: Plane, database: Database) -> Iterator[tuple[str, Gateway]]:  # noqa: F811
    app = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
    app.keys.ttl = 0.0  # every request asks the store: a revoked key is refused at once
    with serve_gateway_app(app) as url:
        yield url, app


def test_a_deployment_key_opens_that_deployment_and_nothing_else(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],
) -> None:
    url, _ = gateway
    calc.client.create_deployment("calc", name="other")
    calc.wait_rollout("other", ("succeeded",))
    key = calc.client.create_key(
        "other-predict", ["predict"], project="default", deployment="other"
    ).key
    ok = httpx.post(f"{url}/v2/models/other/infer", json=BODY, headers=bearer(key))
    assert ok.status_code == 200, ok.text

    message = "Key 'other-predict' works only for deployment 'other'."
    v2 = httpx.post(f"{url}/v2/models/calc/infer", json=BODY, headers=bearer(key))
    assert error_of(v2, 403)["message"] == message
    v1 = httpx.post(
        f"{url}/v1/models/calc:predict", json={"instances": [[1, 2]]}, headers=bearer(key)
    )
    assert error_of(v1, 403)["message"] == message
    for path in ("/v2/models/calc", "/v2/models/calc/ready", "/try/calc/info"):
        answer = httpx.get(f"{url}{path}", headers=bearer(key))
        assert answer.status_code == 403, (path, answer.text)
    # The control plane: it may read nothing, change nothing, make no keys.
    api = calc.client.with_key(key)
    for method, path in [
        ("GET", "/api/v1/deployments/other"),
        ("GET", "/api/v1/projects/default/models"),
        ("DELETE", "/api/v1/deployments/other"),
        ("POST", "/api/v1/keys"),
    ]:
        refused = httpx.request(
            method,
            f"{calc.url}{path}",
            headers=bearer(key),
            json={"name": "more", "scopes": ["predict"]} if method == "POST" else None,
        )
        assert refused.status_code == 403, (method, path, refused.text)
    api.close()


def test_a_deployment_key_is_revoked_with_its_deployment(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],
) -> None:
    url, _ = gateway
    made = calc.client.create_key("calc-predict", ["predict"], project="default", deployment="calc")
    group = calc.client.create_key(
        "Group 1",
        ["predict"],
        project="default",
        deployment="calc",
        kind="group",
        expires_at=made.created_at.replace(year=made.created_at.year + 1),
    )
    unrelated = calc.client.create_key("app", ["predict"], project="default")
    assert httpx.post(f"{url}/v2/models/calc/infer", json=BODY, headers=bearer(made.key)).is_success

    calc.client.delete_deployment("calc")
    rows = {k.id: k for k in calc.client.list_keys(project="default", include_revoked=True)}
    assert rows[made.id].revoked_at is not None
    assert rows[group.id].revoked_at is not None, "a group token ends with its deployment too"
    assert rows[unrelated.id].revoked_at is None, "a key of the project for any deployment stays"
    refused = httpx.get(f"{calc.url}/api/v1/whoami", headers=bearer(made.key))
    assert error_of(refused, 401)["message"].startswith(
        f"API key {made.id!r} (calc-predict) was revoked."
    )
    audit = calc.client.audit(action="deployment.delete").items[0]
    assert sorted(audit.details["revoked_keys"]) == sorted([made.id, group.id])
