"""Traffic figures: what the gateway measures per revision reaches the API and the canary
analysis, which rolls back a canary that fails on live traffic; keys limited to a deployment."""

from __future__ import annotations

import html
import re
import threading
import time
from typing import Any

import httpx
import pytest

from funade.errors import ConflictError, InvalidInputError
from funade.gateway.app import Gateway
from funade.store import Database
from tests.deploy.conftest import Plane, until
from tests.servers import serve_gateway_app
from tests.serving.models import Picky


def body(value: float) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [value, 1]}]}


def headers(plane: Plane) -> dict[str, str]:
    return {"authorization": plane.client._http.headers["authorization"]}


def test_figures_per_revision_reach_the_api_and_the_cli(
    calc: Plane, gateway: tuple[str, Gateway], cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = gateway
    for value in (1, 2, -1):  # -1 makes the model raise: a 500, counted as an error
        httpx.post(f"{url}/v2/models/calc/infer", json=body(value), headers=headers(calc))

    def counted() -> bool:
        return any(r.requests >= 3 for r in calc.client.deployment_stats("calc").revisions)

    until(counted, 10, "the figures to be written")
    [revision] = calc.client.deployment_stats("calc", seconds=60).revisions
    assert (revision.revision, revision.requests, revision.errors) == (1, 3, 1)
    assert revision.error_rate == pytest.approx(1 / 3)
    assert revision.p99_ms is not None
    assert revision.requests_per_second == pytest.approx(3 / 60)
    monkeypatch.setenv("FUNADE_URL", calc.url)
    monkeypatch.setenv("FUNADE_API_KEY", headers(calc)["authorization"][7:])
    shown = cli("deployments", "stats", "calc", "--last", "1m")
    assert shown.code == 0, shown.err
    assert "rev-1" in shown.out
    assert "33.33%" in shown.out


def test_a_canary_that_fails_on_live_traffic_is_rolled_back(
    calc: Plane,
    gateway: tuple[str, Gateway],
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    admin_key: str,
) -> None:
    """Rolled back, and its revision says so (not "verified") in the API, the CLI and the
    dashboard; the rollout is the deployment's second."""
    url, _ = gateway
    calc.log(Picky())
    calc.client.update_deployment(
        "calc",
        version="2",
        runtime={"env": {"FAKE_MODEL_FAIL_ABOVE": "5"}},
        rollout={
            "strategy": "canary",
            "steps": [50, 100],
            "pause_seconds": 4,
            "analysis": {"max_error_rate": 0.05, "min_requests": 5},
        },
    )
    calc.wait_rollout("calc", ("progressing",))
    until(lambda: len(gateway[1].table.routes["calc"].weights) == 2, 5, "the canary to be routed")
    codes = [
        httpx.post(f"{url}/v2/models/calc/infer", json=body(10), headers=headers(calc)).status_code
        for _ in range(40)
    ]
    assert set(codes) == {200, 500}, "the stable revision answers; the canary fails"
    rollout = calc.wait_rollout("calc", ("rolled_back", "succeeded"))
    assert rollout.state == "rolled_back"
    assert rollout.reason.startswith("analysis at 50% failed during the pause: error rate ")
    assert rollout.number == 2
    deployment = calc.client.get_deployment("calc")
    assert deployment.traffic == {1: 100}
    assert [(r.number, r.status) for r in deployment.revisions] == [
        (1, "verified"),
        (2, "rolled_back"),
    ]
    assert deployment.revisions[1].detail == {"reason": rollout.reason}
    monkeypatch.setenv("FUNADE_URL", calc.url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)
    shown = cli("deployments", "show", "calc")
    assert shown.code == 0, shown.err
    assert re.search(r"rev-2 .*calc:2 .*rolled back", shown.out), shown.out
    assert "Rollout 2 of calc: canary to revision 2" in shown.out
    with httpx.Client(base_url=calc.url, headers={"origin": calc.url}) as http:
        assert http.post("/signin", data={"key": admin_key}).status_code == 303
        page = http.get("/deployments/calc?project=default").text
    row = re.search(r'<tr data-revision="2">.*?</tr>', page, re.S)
    assert row is not None
    assert "rolled back</span>" in row[0]
    assert f'title="{html.escape(rollout.reason)}"' in row[0]
    assert "<td>#2</td><td>canary</td>" in page
    with pytest.raises(ConflictError) as refused:
        calc.client.set_traffic("calc", {1: 50, 2: 50})
    assert refused.value.message.startswith(
        "Revision 2 of 'calc' is rolled back (analysis at 50% failed during the pause: "
    )
    assert "is above 5.00%); only verified revisions may take traffic." in refused.value.message
    assert (refused.value.field, refused.value.value) == ("traffic", 2)
    assert refused.value.fix == "Its rollout failed: deploy a fixed version with `funade deploy`."
    app = gateway[1]
    until(lambda: app.table.routes["calc"].weights == ((1, 100),), 5, "the gateway to see it")
    after = [
        httpx.post(f"{url}/v2/models/calc/infer", json=body(10), headers=headers(calc)).status_code
        for _ in range(10)
    ]
    assert after == [200] * 10


def test_a_canary_that_fails_every_request_costs_about_a_second_of_its_traffic(
    calc: Plane, database: Database
) -> None:
    """A steady 20 requests a second, half of them to a canary whose model raises on each: it is
    rolled back once it has failed ``min_requests`` of them and the gateway has written its
    figures (every second), long before its 30 s pause ends, not after it."""
    calc.log(Picky())
    rate, min_requests = 20.0, 5
    app = Gateway(database, refresh_seconds=0.5)  # figures written each second
    with serve_gateway_app(app) as url:
        calc.client.update_deployment(
            "calc",
            version="2",
            runtime={"env": {"FAKE_MODEL_FAIL_ABOVE": "5"}},
            rollout={
                "strategy": "canary",
                "steps": [50, 100],
                "pause_seconds": 30,
                "analysis": {"min_requests": min_requests},
            },
        )
        calc.wait_rollout("calc", ("progressing",))
        codes: list[int] = []
        stop = threading.Event()

        def steady() -> None:
            with httpx.Client(headers=headers(calc), timeout=10) as http:
                while not stop.is_set() and len(codes) < 40 * rate:
                    began = time.monotonic()
                    codes.append(
                        http.post(f"{url}/v2/models/calc/infer", json=body(10)).status_code
                    )
                    stop.wait(max(0.0, 1 / rate - (time.monotonic() - began)))

        sender = threading.Thread(target=steady, daemon=True)
        began = time.monotonic()
        sender.start()
        try:
            rollout = calc.wait_rollout("calc", ("rolled_back", "succeeded"), timeout=40)
            took = time.monotonic() - began
            time.sleep(2)  # the gateway reloads its table within a second of the rollback
        finally:
            stop.set()
            sender.join(timeout=15)
    assert rollout.state == "rolled_back"
    assert rollout.reason.startswith("analysis at 50% failed during the pause: error rate 100.00%")
    assert took < 10, f"rolled back after {took:.1f} s of a 30 s pause"
    failed = codes.count(500)
    # min_requests, plus what reaches the canary (half of 20/s) while the figures are written
    # (each second) and read (the controller's next pass), and the gateway reloads its table
    assert min_requests <= failed <= min_requests + 2.5 * rate / 2, codes
    assert set(codes) == {200, 500}
    assert codes[-10:] == [200] * 10, "all traffic is back on the stable revision"


def test_a_key_for_one_deployment_works_only_there(
    calc: Plane, gateway: tuple[str, Gateway]
) -> None:
    url, app = gateway
    scoped = calc.client.create_key("calc-app", ["predict"], project="default", deployment="calc")
    assert scoped.deployment == "calc"
    answer = httpx.post(
        f"{url}/v2/models/calc/infer", json=body(1), headers={"x-api-key": scoped.key}
    )
    assert answer.status_code == 200
    calc.client.create_deployment("calc", name="calc-b")
    calc.wait_rollout("calc-b", ("succeeded",))
    until(lambda: "calc-b" in app.table.routes, 5, "the second deployment to be routed")
    refused = httpx.post(
        f"{url}/v2/models/calc-b/infer", json=body(1), headers={"x-api-key": scoped.key}
    )
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("Key 'calc-app' works only for deployment 'calc'.")
    with pytest.raises(InvalidInputError, match="may only predict, in one project") as info:
        calc.client.create_key("bad", ["write"], project="default", deployment="calc")
    assert info.value.field == "deployment"
    [event] = calc.client.audit(action="key.create").items[:1]
    assert event.details["deployment"] == "calc"
