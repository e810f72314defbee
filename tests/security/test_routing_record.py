"""What the gateways record of the routing they serve (``gateways``, shown as a deployment's
``routing``) names no replica, and shows a key only what it may read."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from funade.gateway.app import Gateway
from funade.store import Database
from funade.store.schema import GatewayRecord
from tests.deploy.conftest import Plane, calc, plane, until  # noqa: F401 - shared fixtures
from tests.servers import serve_gateway_app


@pytest.fixture
def gateway(calc: Plane, database: Database) -> Iterator[Gateway]:  # noqa: F811
    app = Gateway(database, refresh_seconds=0.1)
    with serve_gateway_app(app):
        yield app


def test_the_routing_record_names_no_replica_and_no_other_deployment(
    calc: Plane,  # noqa: F811
    gateway: Gateway,
    database: Database,
) -> None:
    calc.client.create_deployment("calc", name="calc-b")
    calc.wait_rollout("calc-b", ("succeeded",))

    def replica_urls() -> list[str]:
        replicas = [u for r in gateway.table.routes.values() for u in r.replicas.values()]
        return [url for urls in replicas for url in urls]

    # Both deployments routed with their replica (a route can show before its replica does).
    until(lambda: len(replica_urls()) == 2, 10, "the gateway to route calc and calc-b")
    secrets = replica_urls()
    secrets += [t for r in gateway.table.routes.values() for t in r.tokens.values()]
    assert len(secrets) == 4
    with database.read() as session:
        stored = str(session.get(GatewayRecord, gateway.stats.gateway).__dict__)  # type: ignore[union-attr]
    shown = calc.client._http.get("/api/v1/deployments/calc").json()["routing"]
    for text in (stored, str(shown)):
        for secret in secrets:
            assert secret not in text
    [entry] = shown["gateways"]
    assert set(entry) == {"gateway", "generation", "ready", "serving", "waiting_for", "seen_at"}
    assert entry["ready"] == [1]


def test_another_projects_key_sees_no_routing(
    calc: Plane,  # noqa: F811
    gateway: Gateway,
) -> None:
    calc.client.create_project("other")
    outsider = calc.client.create_key("outsider", ["read"], project="other")
    answer = httpx.get(f"{calc.url}/api/v1/deployments/calc", headers={"x-api-key": outsider.key})
    assert answer.status_code == 404
    assert "routing" not in answer.text
    assert answer.json()["error"]["message"].startswith("Deployment 'calc' does not exist.")
    listed = httpx.get(
        f"{calc.url}/api/v1/deployments",
        params={"project": "other"},
        headers={"x-api-key": outsider.key},
    )
    assert listed.status_code == 200
    assert listed.json() == []
