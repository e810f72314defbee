"""Commands that change routing wait until the gateways serve it: each gateway records in the
store the routing generation it loaded and the revisions it has ready replicas for; `funade
traffic` (and the API's ``routing``) read it, and say what changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from funade.deploy import routing
from funade.gateway.app import Gateway
from funade.store import Database
from funade.store.schema import GatewayRecord
from tests.cli.conftest import Result
from tests.deploy.conftest import Plane, until
from tests.servers import serve_gateway_app
from tests.serving.models import Arithmetic

BODY = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}


def words(text: str) -> str:
    """What a command printed, whatever the terminal's width wrapped."""
    return " ".join(text.split())


@pytest.fixture
def remote(calc: Plane, monkeypatch: pytest.MonkeyPatch) -> Plane:
    monkeypatch.setenv("FUNADE_URL", calc.url)
    monkeypatch.setenv("FUNADE_API_KEY", calc.client._http.headers["authorization"][7:])
    return calc


def on_rev_2_alone(plane: Plane) -> None:
    """calc:2 takes all traffic; revision 1's replicas drain and stop."""
    plane.log(Arithmetic())
    plane.client.update_deployment("calc", version="2")
    plane.wait_rollout("calc", ("succeeded",))
    until(
        lambda: {r.revision for r in plane.client.get_deployment("calc").replicas} == {2},
        30,
        "revision 1's replicas to stop",
    )


def test_traffic_with_a_shadow_returns_once_the_gateway_mirrors(
    remote: Plane, gateway: tuple[str, Gateway], cli: Callable[..., Result]
) -> None:
    """The shadow revision's replicas have to start first: the command waits for the gateway to
    have them, so every request sent after it returns is mirrored."""
    url, app = gateway
    on_rev_2_alone(remote)
    shadowed = cli("traffic", "calc", "--shadow", "1")
    assert shadowed.code == 0, shadowed.err
    said = words(shadowed.out)
    assert said.startswith(
        "calc: traffic unchanged (rev-2 100%); shadow none → rev-1 (a copy of every request) "
        "Served by 1 gateway after "
    ), said
    assert 1 in app.table.routes["calc"].replicas, "the gateway has the shadow's replicas"
    headers = {"authorization": remote.client._http.headers["authorization"]}
    began = time.time()
    for _ in range(20):
        answer = httpx.post(f"{url}/v2/models/calc/infer", json=BODY, headers=headers)
        assert answer.status_code == 200
        time.sleep(0.02)  # the copies go in the background; few are out at once

    def mirrored() -> int:
        stats = remote.client.deployment_stats("calc", seconds=time.time() - began + 5)
        return sum(r.requests for r in stats.revisions if r.revision == 1)

    until(lambda: mirrored() >= 20, 10, "the copies to be counted")
    assert mirrored() == 20

    routing_now = remote.client.get_deployment("calc").routing
    assert routing_now is not None
    assert (routing_now.wanted, routing_now.served) == ([1, 2], True)
    [seen] = routing_now.gateways
    assert (seen.gateway, seen.ready, seen.serving) == (app.stats.gateway, [1, 2], True)
    assert seen.generation == routing_now.generation

    shown = words(cli("deployments", "show", "calc").out)
    assert f"Gateways: 1 gateway, all serving routing generation {seen.generation}." in shown

    stopped = cli("traffic", "calc", "--no-shadow")
    assert stopped.code == 0, stopped.err
    assert words(stopped.out).startswith(
        "calc: traffic unchanged (rev-2 100%); shadow rev-1 → none Served by 1 gateway"
    )
    assert app.table.routes["calc"].shadow is None


def test_traffic_says_when_no_gateway_runs_or_one_does_not_serve_it_in_time(
    remote: Plane, database: Database, cli: Callable[..., Result]
) -> None:
    remote.log(Arithmetic())
    remote.client.update_deployment("calc", version="2", rollout={"strategy": "bluegreen"})
    remote.wait_rollout("calc", ("succeeded",))
    alone = cli("traffic", "calc", "rev-1=80", "rev-2=20")
    assert alone.code == 0, alone.err
    assert "Gateways: none running (none reported in the last 30 s)." in words(
        cli("deployments", "show", "calc").out
    )
    assert words(alone.out) == (
        "calc: traffic rev-2 100% → rev-1 80%, rev-2 20% "
        "No gateway is running (none reported in the last 30 s): one that starts serves this "
        "within 1 s, routing to each revision once it has ready replicas."
    )
    # A gateway that stopped reporting (e.g. its store connection hangs) is waited for until the
    # timeout; the command names it and what it lacks, and fails.
    stale = routing.now()
    routing.report(database, "g-stuck", {}, stale)
    shown = words(cli("deployments", "show", "calc").out)
    assert "Gateways: 1 of 1 gateway not serving it yet: g-stuck has not loaded the" in shown
    late = cli("traffic", "calc", "rev-1=50", "rev-2=50", "--timeout", "1s")
    assert late.code == 1
    assert words(late.out) == (
        "calc: traffic rev-1 80%, rev-2 20% → rev-1 50%, rev-2 50% "
        "Not served yet after 1 s by 1 of 1 gateway: g-stuck has not loaded the deployment "
        "yet. The change is stored; they serve it once that is done."
    )
    without = cli("traffic", "calc", "rev-1=100", "--no-wait")
    assert without.code == 0, without.err
    assert words(without.out) == (
        "calc: traffic rev-1 50%, rev-2 50% → rev-1 100% "
        "Running gateways load it within 1 s, once the revisions it routes to have ready replicas."
    )
    bad = cli("traffic", "calc", "rev-1=100", "--timeout", "soon")
    assert bad.code == 2
    assert "'soon' is not a duration" in bad.err
    assert remote.client.get_deployment("calc").traffic == {1: 100}


def test_a_gateway_records_what_it_serves_and_forgets_it_when_it_stops(
    calc: Plane, database: Database
) -> None:
    app = Gateway(database, refresh_seconds=0.1)
    with serve_gateway_app(app):
        with database.read() as session:
            row = session.get(GatewayRecord, app.stats.gateway)
            assert row is not None
            deployment = calc.client.get_deployment("calc")
            assert deployment.routing is not None
            [entry] = row.routes.values()
            assert entry == {"generation": deployment.routing.generation, "ready": [1]}
        calc.client.set_traffic("calc", shadow=1)

        def served() -> bool:
            now: Any = calc.client.get_deployment("calc").routing
            return bool(now.served)

        until(served, 5, "the gateway to load the new generation")
    with database.read() as session:
        assert session.get(GatewayRecord, app.stats.gateway) is None
    after: Any = calc.client.get_deployment("calc").routing
    assert (after.gateways, after.served) == ([], False)


def test_a_record_that_cannot_be_written_is_logged_once_and_tried_again(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The table is served all the same; the failure is logged once, not on every load, and
    the next load after the store is writable again records it. A gateway that starts removes
    the records of gateways not heard of for an hour (killed ones)."""
    from datetime import timedelta

    from sqlalchemy import text

    from funade.gateway.table import TableLoader
    from funade.store.schema import Base

    loader = TableLoader(database, "g-one")
    assert loader.load(time.time()).routes == {}
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE gateways"))
    with caplog.at_level("WARNING", logger="funade.gateway"):
        for _ in range(3):
            assert loader.load(time.time() + 20).routes == {}  # a heartbeat is due: it tries
    assert loader.report_error.startswith("OperationalError: (sqlite3.OperationalError) no such")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1
    assert warned[0].startswith("could not record the routing this gateway serves: ")
    Base.metadata.tables["gateways"].create(database.engine)
    loader.load(time.time() + 20)
    assert loader.report_error == ""
    with database.read() as session:
        assert session.get(GatewayRecord, "g-one") is not None

    routing.report(database, "g-dead", {}, routing.now() - timedelta(hours=2))
    TableLoader(database, "g-two").load(time.time())
    with database.read() as session:
        assert {r.id for r in session.query(GatewayRecord)} == {"g-one", "g-two"}


def test_promote_and_rollback_return_once_the_gateway_serves_them(
    remote: Plane, gateway: tuple[str, Gateway], cli: Callable[..., Result]
) -> None:
    """A canary paused at 10% promoted by hand, then rolled back: each command says what changed
    and returns once the gateway routes by it."""
    _, app = gateway
    remote.log(Arithmetic())
    remote.client.update_deployment(
        "calc",
        version="2",
        rollout={"strategy": "canary", "steps": [10, 100], "pause_seconds": 600},
    )
    remote.wait_rollout("calc", ("progressing",))
    promoted = cli("rollout", "promote", "calc")
    assert promoted.code == 0, promoted.err
    said = words(promoted.out)
    assert "calc: traffic rev-1 90%, rev-2 10% → rev-2 100% Served by 1 gateway after" in said
    assert app.table.routes["calc"].weights == ((2, 100),)
    back = cli("rollback", "calc")
    assert back.code == 0, back.err
    said = words(back.out)
    assert "calc: traffic rev-2 100% → rev-1 100% Served by 1 gateway after" in said, said
    assert app.table.routes["calc"].weights == ((1, 100),)
    assert 1 in app.table.routes["calc"].replicas
