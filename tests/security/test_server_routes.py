"""The Open Inference Protocol's server-level routes at the gateway and Triton's extensions at a
replica (issue 20): what they give a caller without a key, with a wrong key, or with a key of
another project, and what a replica gives without its token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from funade.deploy.replicaurl import ReplicaHTTP
from funade.gateway.app import Gateway
from funade.store import Database
from tests.deploy.conftest import Plane, calc, plane  # noqa: F401 - shared fixtures
from tests.servers import serve_gateway_app


@pytest.fixture
def gateway(calc: Plane, database: Database) -> Iterator[str]:  # noqa: F811
    app = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
    with serve_gateway_app(app) as url:
        yield url


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_the_repository_index_lists_only_what_the_key_may_call(
    calc: Plane,  # noqa: F811
    gateway: str,
) -> None:
    index = f"{gateway}/v2/repository/index"
    calc.client.create_project("other")
    theirs = calc.client.create_key("theirs", ["predict"], project="other").key
    reader = calc.client.create_key("reader", ["read"], project="default").key
    ours = calc.client.create_key("ours", ["predict"], project="default").key
    elsewhere = calc.client.create_key("elsewhere", ["predict"], project="default")
    assert httpx.post(index, headers=bearer(ours)).json() == [
        {"name": "calc", "version": "1", "state": "READY"}
    ]
    for key in (theirs, reader):  # another project's, or one without the predict scope
        assert httpx.post(index, headers=bearer(key)).json() == []
    assert httpx.post(index).json() == []  # calc is not public
    calc.client.revoke_key(elsewhere.id)
    for token in (elsewhere.key, "fnd_nope_nope", "x" * 5000):
        refused = httpx.post(index, headers={"x-api-key": token})
        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "unauthenticated"
        assert refused.headers["www-authenticate"] == "Bearer"


def test_server_routes_need_no_key_and_say_nothing_of_deployments(
    calc: Plane,  # noqa: F811
    gateway: str,
) -> None:
    for path in ("/", "/v2", "/v2/health/live", "/v2/health/ready"):
        answer = httpx.get(gateway + path, headers={"x-api-key": "not a key at all"})
        assert answer.status_code == 200, (path, answer.text)
        assert "calc" not in answer.text
    assert httpx.get(f"{gateway}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{gateway}/").json() == {"status": "alive"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v2", "GET, HEAD"),
        ("DELETE", "/v2/health/ready", "GET, HEAD"),
        ("GET", "/v2/repository/index", "POST"),
        ("PUT", "/", "GET, HEAD"),
    ],
)
def test_server_routes_refuse_other_methods_in_the_error_shape(
    gateway: str, method: str, path: str, allowed: str
) -> None:
    answer = httpx.request(method, gateway + path, content=b"\x00" * 1000)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.json()["code"] == "method_not_allowed"
    assert answer.json()["error"].startswith(f"{path} takes ")


def test_an_unknown_path_is_a_json_404_that_names_no_deployment(gateway: str) -> None:
    answer = httpx.get(f"{gateway}/v2/repository/models/calc/load")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"
    assert answer.json()["error"].startswith(
        "There is no route '/v2/repository/models/calc/load' at the gateway."
    )


def test_a_replica_gives_its_config_and_stats_only_to_its_gateway(calc: Plane) -> None:  # noqa: F811
    (replica,) = [r for r in calc.client.get_deployment("calc").replicas if r.state == "ready"]
    token = calc.replica_token(replica.url)
    with ReplicaHTTP(10) as http:  # closed: its kept-alive connection too
        for path in ("/v2/models/calc/config", "/v2/models/calc/stats"):
            refused = http.get(replica.url, path)
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == "unauthenticated"
            assert http.get(replica.url, path, headers=bearer(token)).status_code == 200
        refused = http.post(replica.url, "/v2/repository/index")
        assert refused.status_code == 401
        assert http.get(replica.url, "/").json() == {"status": "alive"}  # a probe, like /v2/health
