"""The gateway in front of a live deployment: routing and headers, keys and scopes, allowlists,
rate limits, body limits, retries when a replica dies, and the last good routing table."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.deploy.policy import Policy, RateLimit
from funade.gateway.app import Gateway
from funade.gateway.limits import Buckets, retry_after
from funade.gateway.table import Route, RoutingTable
from funade.store import Database, create_database
from tests.deploy.conftest import Plane, until
from tests.servers import serve, serve_gateway_app
from tests.serving.models import Arithmetic

BODY = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}


def admin_headers(plane: Plane) -> dict[str, str]:
    return {"authorization": plane.client._http.headers["authorization"]}


def post(url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("json", BODY)
    return httpx.post(f"{url}/v2/models/calc/infer", headers=headers or {}, **kwargs)


def test_routes_to_the_deployment_with_revision_headers(
    calc: Plane, gateway: tuple[str, Gateway]
) -> None:
    url, _ = gateway
    response = post(url, admin_headers(calc))
    assert response.status_code == 200, response.text
    assert response.headers["funade-revision"] == "1"
    assert response.headers["funade-model-version"] == "calc:1"
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    assert outputs["double"] == [2.0, 4.0]
    v1 = httpx.post(
        f"{url}/v1/models/calc:predict", json={"instances": [[1, 2]]}, headers=admin_headers(calc)
    )
    assert v1.status_code == 200, v1.text
    meta = httpx.get(f"{url}/v2/models/calc", headers=admin_headers(calc))
    assert meta.json()["name"] == "calc"
    metrics = httpx.get(f"{url}/metrics", headers=admin_headers(calc)).text
    assert 'funade_gateway_requests_total{deployment="calc",revision="1",status="200"}' in metrics
    health = httpx.get(f"{url}/healthz").json()
    assert health["deployments"] == 1
    assert health["table_error"] is None


def test_unknown_deployments_and_paths(gateway: tuple[str, Gateway], calc: Plane) -> None:
    url, _ = gateway
    response = httpx.post(f"{url}/v2/models/nope/infer", json=BODY)
    assert response.status_code == 404
    assert response.json()["error"].startswith("Deployment 'nope' does not exist.")
    assert httpx.get(f"{url}/api/v1/whoami").status_code == 404


def test_a_trailing_slash_is_a_404_in_the_protocols_shape_never_a_redirect(
    gateway: tuple[str, Gateway], calc: Plane
) -> None:
    """`/v2/` is no route at the gateway; `/v2/models/calc/` is forwarded, and the replica's
    answer is a 404 too (not a 307 whose Location would name the replica's own address)."""
    url, _ = gateway
    top = httpx.get(f"{url}/v2/", follow_redirects=False)
    assert top.status_code == 404
    assert top.json()["error"].startswith("There is no route '/v2/' at the gateway.")
    assert top.json()["code"] == "not_found"
    model = httpx.get(f"{url}/v2/models/calc/", headers=admin_headers(calc), follow_redirects=False)
    assert model.status_code == 404
    assert "location" not in model.headers
    assert model.json()["error"] == (
        "There is no such route on this model server. Call /v2/models/<name>/infer."
    )
    assert httpx.get(f"{url}/v2").json()["name"] == "funade"


def test_keys_need_the_predict_scope_in_the_deployments_project(
    calc: Plane, gateway: tuple[str, Gateway]
) -> None:
    url, _ = gateway
    missing = post(url)
    assert missing.status_code == 401
    assert missing.json()["error"].startswith("Deployment 'calc' needs an API key.")
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = post(url, {"x-api-key": "fnd_000000000000_nope"})
    assert wrong.status_code == 401
    reader = calc.client.create_key("reader", ["read"], project="default").key
    refused = post(url, {"authorization": f"Bearer {reader}"})
    assert refused.status_code == 403
    assert "--scope predict --project default" in refused.json()["fix"]
    calc.client.create_project("other")
    stranger = calc.client.create_key("stranger", ["predict"], project="other").key
    hidden = post(url, {"authorization": f"Bearer {stranger}"})  # as if there were no 'calc'
    assert hidden.status_code == 404
    assert hidden.json()["error"].startswith("Deployment 'calc' does not exist.")
    predictor = calc.client.create_key("app", ["predict"], project="default")
    assert post(url, {"x-api-key": predictor.key}).status_code == 200
    calc.client.revoke_key(predictor.id)
    time.sleep(5.2)  # the gateway caches a key's check for 5 s
    revoked = post(url, {"x-api-key": predictor.key})
    assert revoked.status_code == 401
    assert "was revoked" in revoked.json()["error"]


def test_public_deployments_allowlists_and_body_limits(
    calc: Plane, gateway: tuple[str, Gateway]
) -> None:
    url, app = gateway
    calc.client.update_deployment("calc", policy={"public": True, "max_body_bytes": 200})
    until(lambda: app.table.routes["calc"].policy.public, 5, "the policy")
    assert post(url).status_code == 200
    big = post(
        url,
        json={"inputs": [{"name": "x", "datatype": "FP64", "shape": [40, 2], "data": [1.0] * 80}]},
    )
    assert big.status_code == 413
    assert "at most 200" in big.json()["error"]
    calc.client.update_deployment("calc", policy={"public": True, "allow_cidrs": ["10.0.0.0/8"]})
    until(lambda: app.table.routes["calc"].policy.allow_cidrs, 5, "the allowlist")
    denied = post(url)
    assert denied.status_code == 403
    assert denied.json()["error"].startswith("Address 127.0.0.1 may not call 'calc'.")
    calc.client.update_deployment("calc", policy={"public": True, "allow_cidrs": ["127.0.0.0/8"]})
    until(
        lambda: app.table.routes["calc"].policy.allow_cidrs == ["127.0.0.0/8"], 5, "the allowlist"
    )
    assert post(url).status_code == 200
    audit = [e.details.get("policy") for e in calc.client.audit(action="deployment.update").items]
    assert audit[0]["allow_cidrs"] == ["127.0.0.0/8"], "each change is in the audit log"


def test_rate_limits_per_deployment_and_per_key(calc: Plane, gateway: tuple[str, Gateway]) -> None:
    url, app = gateway
    calc.client.update_deployment(
        "calc", policy={"key_rate_limit": {"per_second": 0.5, "burst": 2}}
    )
    until(lambda: app.table.routes["calc"].policy.key_rate_limit is not None, 5, "the limit")
    headers = admin_headers(calc)
    assert [post(url, headers).status_code for _ in range(2)] == [200, 200]
    limited = post(url, headers)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert "Key 'local-admin' is over its rate limit" in limited.json()["error"]
    other = calc.client.create_key("other", ["predict"], project="default").key
    assert post(url, {"x-api-key": other}).status_code == 200, "each key has its own bucket"

    calc.client.update_deployment(
        "calc", policy={"public": True, "rate_limit": {"per_second": 1, "burst": 1}}
    )
    until(lambda: app.table.routes["calc"].policy.rate_limit is not None, 5, "the limit")
    codes = [post(url).status_code for _ in range(3)]
    assert codes[0] == 200
    assert 429 in codes
    assert 'reason="rate_limited"' in httpx.get(f"{url}/metrics", headers=admin_headers(calc)).text


def test_token_buckets_refill_continuously() -> None:
    buckets = Buckets()
    limit = RateLimit(per_second=2, burst=3)
    assert [buckets.take("k", limit, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k", limit, 0.0) == pytest.approx(0.5)
    assert buckets.take("k", limit, 0.5) == 0.0
    assert retry_after(0.01) == "1"
    assert retry_after(2.2) == "3"


def test_a_dead_replica_is_retried_on_another(calc: Plane, gateway: tuple[str, Gateway]) -> None:
    url, app = gateway
    calc.client.update_deployment(
        "calc", replicas=2, rollout={"strategy": "bluegreen", "warm_seconds": 0}
    )
    calc.wait_rollout("calc", ("succeeded",))
    until(lambda: len(app.table.routes["calc"].replicas.get(2, ())) == 2, 10, "two replicas routed")
    headers = admin_headers(calc)
    assert all(post(url, headers).status_code == 200 for _ in range(10))
    record = next((calc.home / "replicas").glob("calc-r2-*.json"))
    os.kill(json.loads(record.read_text())["pid"], signal.SIGKILL)
    codes = [post(url, headers).status_code for _ in range(40)]
    assert codes == [200] * 40
    assert (
        "funade_gateway_retries_total"
        in httpx.get(f"{url}/metrics", headers=admin_headers(calc)).text
    )


def test_the_last_good_table_serves_while_the_store_is_away(
    calc: Plane, tmp_path: Path, settings: Any
) -> None:
    source = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
    copy = tmp_path / "copy.db"
    with sqlite3.connect(source) as live, sqlite3.connect(copy) as backup:
        live.backup(backup)  # the store as it is now, WAL included
    db = create_database(f"sqlite:///{copy}")
    app = Gateway(db, refresh_seconds=0.1)
    with serve_gateway_app(app) as url:
        assert post(url, admin_headers(calc)).status_code == 200
        copy.unlink()
        for suffix in ("-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
        db.engine.dispose()  # open connections kept the deleted file; new ones find no store
        until(lambda: app.table_error, 5, "the gateway to notice")
        assert post(url, admin_headers(calc)).status_code == 200
        assert httpx.get(f"{url}/healthz").json()["table_error"]
    db.dispose()


def test_a_shadow_revision_gets_copies_and_the_client_only_the_primary_answer(
    calc: Plane, gateway: tuple[str, Gateway]
) -> None:
    url, app = gateway
    calc.log(Arithmetic())
    calc.client.update_deployment("calc", version="2", rollout={"strategy": "bluegreen"})
    calc.wait_rollout("calc", ("succeeded",))
    calc.client.set_traffic("calc", {1: 100})
    calc.client.set_traffic("calc", shadow=2)
    until(lambda: app.table.routes["calc"].shadow == 2, 5, "the gateway to see the shadow")
    until(lambda: 2 in app.table.routes["calc"].replicas, 10, "the shadow's replica routed")
    answers = [post(url, admin_headers(calc)) for _ in range(5)]
    assert [a.headers["funade-revision"] for a in answers] == ["1"] * 5
    mirrored = 'funade_gateway_requests_total{deployment="calc",revision="shadow-2",status="200"}'
    until(
        lambda: mirrored in httpx.get(f"{url}/metrics", headers=admin_headers(calc)).text,
        5,
        "the copies to be answered",
    )


class Breaking:
    """A replica that reads a request and dies while answering it: headers, half a body, then
    the connection closes (what a kill -9 mid-answer looks like to the gateway)."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.hits = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                self.hits += 1
                conn.sendall(self.reply)


def one_route(replicas: tuple[str, ...]) -> RoutingTable:
    route = Route(
        id=1,
        name="calc",
        project="default",
        policy=Policy(public=True),
        networks=(),
        weights=((1, 100),),
        shadow=None,
        replicas={1: replicas},
        versions={1: "calc:1"},
    )
    return RoutingTable({"calc": route}, time.time())


async def answers_ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A replica that answers every request whole."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"outputs": []}'})


CUT_SHORT = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"
NOT_HTTP = b"SSH-2.0-OpenSSH_9.2\r\n"


@pytest.mark.parametrize("reply", [CUT_SHORT, NOT_HTTP], ids=["cut-short", "not-http"])
def test_a_replica_that_dies_while_answering_is_retried_on_another(
    database: Database, reply: bytes
) -> None:
    broken = Breaking(reply)
    with serve(answers_ok) as good_url:
        app = Gateway(database, refresh_seconds=3600)
        with serve_gateway_app(app) as url:
            app.table = one_route((broken.url, good_url))  # the broken one is tried first
            answer = post(url)
            assert answer.status_code == 200, answer.text
            assert broken.hits == 1
            assert app.retries.labels("calc")._value.get() == 1
    broken.sock.close()


def test_no_replica_answering_whole_is_a_502_that_says_so(database: Database) -> None:
    broken = [Breaking(CUT_SHORT), Breaking(NOT_HTTP)]
    app = Gateway(database, refresh_seconds=3600)
    with serve_gateway_app(app) as url:
        app.table = one_route(tuple(b.url for b in broken))
        answer = post(url)
    assert answer.status_code == 502
    error = answer.json()
    assert error["code"] == "bad_gateway"
    assert error["error"].startswith("No replica of 'calc' could be reached")
    assert [b.hits for b in broken] == [1, 1]
    for b in broken:
        b.sock.close()


def test_a_fault_of_the_gateways_own_is_a_json_500_and_a_log_line(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    class Faulty(Gateway):
        async def _proxy(self, call: Any) -> Any:
            raise RuntimeError("a bug")

    with serve_gateway_app(Faulty(database, refresh_seconds=3600)) as url:
        answer = post(url)
    assert answer.status_code == 500
    assert answer.json()["code"] == "internal"
    assert "its log has the details" in answer.json()["error"]
    assert any(
        "the gateway failed on POST /v2/models/calc/infer" in r.message for r in caplog.records
    )
