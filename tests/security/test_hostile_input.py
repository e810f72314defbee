"""Hostile input gets a clear 4xx that names the field, never a 500 or a dropped connection, and
nothing stored changes (issue 17, part 7). Each case here was a 500, a reset connection or a
silent acceptance before; the fuzz runs (test_fuzz_*.py) guard the rest of the surface.

Every request of a test goes over one keep-alive connection: a server that failed and dropped
it would fail the next request too, so "the connection survived" is checked by the test's
next request.
"""

from __future__ import annotations

import base64
import io
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

import funade
from funade.api.app import create_app
from funade.api.middleware.authfirst import needs_key
from funade.api.strictjson import check_json_body
from funade.artifacts import ArtifactStore
from funade.bootstrap import bootstrap
from funade.client import Client
from funade.errors import InvalidInputError, InvalidNameError
from funade.gateway.app import Gateway
from funade.names import check_alias_name, check_model_name, check_project_name, check_tags
from funade.pagination import decode_cursor, encode_cursor
from funade.registry.images import ImageInput, decode_images
from funade.settings import Settings
from funade.store import Database
from tests.api.test_route_auth import _routes
from tests.conftest import make_settings
from tests.deploy.conftest import Plane, calc, plane  # noqa: F401 - shared fixtures
from tests.gateway.conftest import gateway  # noqa: F401 - shared fixture
from tests.servers import serve
from tests.serving.fakes import arithmetic_package, running
from tests.serving.models import Arithmetic

BIG = 2**64
SAMPLE = {"x": np.array([[1.0, 2.0], [3.0, 4.0]])}


def raw_json(text: str) -> bytes:
    """``text`` as a body, lone surrogates and all (what a careless client sends)."""
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture
def http(app_url: str, admin_key: str) -> Iterator[httpx.Client]:
    """One keep-alive connection to the control plane, with the admin key."""
    headers = {"authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=app_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def calc_model(admin: Client) -> int:
    """The model ``calc`` with version 1 (alias ``production``)."""
    return funade.log_model(
        Arithmetic(),
        "calc",
        sample_input=SAMPLE,
        alias="production",
        client=admin,
        progress=False,
    ).version


def refused(response: httpx.Response, status: int, field: str, code: str = "invalid_input") -> str:
    """Assert an error answer of ``status`` naming ``field``; return its message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["field"] == field, error
    return str(error["message"])


# Integers past 64 (and 32) bits -----------------------------------------------------------


STORE_MAX = "2147483647"  # the largest id or number the store keeps (PostgreSQL's integer)


@pytest.mark.parametrize(
    ("method", "path", "field", "says"),
    [
        ("GET", f"/api/v1/runs/{BIG}", "run_id", STORE_MAX),
        ("POST", f"/api/v1/runs/{BIG}/cancel", "run_id", STORE_MAX),
        ("GET", f"/api/v1/runs/{BIG}/logs", "run_id", STORE_MAX),
        ("POST", f"/api/v1/runs/{BIG}/resume", "run_id", STORE_MAX),
        ("DELETE", f"/api/v1/projects/default/models/calc/versions/{BIG}", "number", STORE_MAX),
        ("GET", f"/api/v1/projects/default/runs?schedule_id={BIG}", "schedule_id", STORE_MAX),
        ("GET", f"/api/v1/projects/default/runs?limit={BIG}", "limit", "or equal to 500"),
        ("GET", f"/api/v1/projects/default/models/calc/versions/{BIG}", "version", STORE_MAX),
        ("GET", "/api/v1/projects/default/models/calc/versions/2147483648", "version", STORE_MAX),
    ],
)
def test_integers_past_the_store_in_paths_are_422_naming_the_parameter(
    http: httpx.Client, calc_model: int, method: str, path: str, field: str, says: str
) -> None:
    assert says in refused(http.request(method, path), 422, field)
    assert http.get("/api/v1/projects/default/models/calc").status_code == 200


def test_integers_past_64_bits_in_bodies_are_422_naming_the_field(
    http: httpx.Client, calc_model: int
) -> None:
    alias = "/api/v1/projects/default/models/calc/aliases/staging"
    cases: list[tuple[str, str, bytes, str]] = [
        ("PUT", alias, b'{"version": 18446744073709551616}', "version"),
        ("PUT", alias, b'{"version": -99999999999999999999}', "version"),
        (
            "POST",
            "/api/v1/projects/default/runs",
            b'{"pipeline": "p", "spec": {}, "params": {"n": 123456789012345678901234}}',
            "params.n",
        ),
        ("PUT", "/api/v1/deployments/calc/traffic", b'{"weights": {"1": 1e30}}', "weights.1"),
    ]
    for method, path, body, field in cases:
        response = http.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field
    # within 64 bits but past the store's 32-bit columns
    message = refused(http.put(alias, json={"version": 2**31}), 422, "version")
    assert "less than or equal to 2147483647" in message
    assert http.get(alias).status_code == 404  # nothing was set


def test_big_integers_are_refused_on_both_stores(database_url: str, tmp_path: Path) -> None:
    """On PostgreSQL a version past 32 bits was a database error; on SQLite, one past 64."""
    settings = make_settings(tmp_path / "home", database_url)
    from funade.store import create_database, upgrade

    db = create_database(settings.resolved_database_url)
    upgrade(db)
    key = bootstrap(settings, db).admin_key
    app = create_app(settings, db, ArtifactStore.from_settings(settings))
    try:
        with (
            serve(app) as url,
            httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}) as http,
        ):
            assert http.post("/api/v1/projects/default/models", json={"name": "m"}).is_success
            for number in (2**31, 2**63, BIG):
                response = http.get(f"/api/v1/projects/default/models/m/versions/{number}")
                refused(response, 422, "version")
                response = http.get(f"/api/v1/runs/{number}")
                refused(response, 422, "run_id")
            response = http.post(
                "/api/v1/projects/default/runs",
                json={"pipeline": "p", "spec": {}, "schedule_id": 2**40},
            )
            refused(response, 422, "schedule_id")
    finally:
        db.dispose()


# The Funade-Error-Field header --------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "header"),
    [
        ("a\r\nb", "tags.a%0D%0Ab"),
        ("a\nSet-Cookie: x=1", "tags.a%0ASet-Cookie: x=1"),
        ("é", "tags.%C3%A9"),
        ("\x01\x7f", "tags.%01%7F"),
        ("100%", "tags.100%25"),
    ],
)
def test_a_field_name_never_breaks_the_error_field_header(
    http: httpx.Client, key: str, header: str
) -> None:
    """A tag key is a field name the client chose; in the header it used to close the
    connection without an answer (a newline) or be dropped (non-ASCII)."""
    response = http.post("/api/v1/projects/default/models", json={"name": "m", "tags": {key: "v"}})
    refused(response, 422, f"tags.{key}", code="invalid_name")
    assert response.headers["funade-error-field"] == header
    assert "set-cookie" not in response.headers
    unknown = http.post("/api/v1/projects/default/models", json={"name": "m", key: 1})
    refused(unknown, 422, key)
    assert http.get("/api/v1/projects/default/models").json()["items"] == []


# Cursors ------------------------------------------------------------------------------------


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


FORGED = [
    _cursor({"id": "x"}),
    _cursor({"id": 1e300}),
    _cursor({"id": BIG}),
    _cursor({"id": True}),
    _cursor({"id": [1]}),
    _cursor({"name": [1]}),
    _cursor({"number": None}),
    _cursor({}),
    _cursor([1]),
    _cursor({"id": 1, "extra": 2}),
    base64.urlsafe_b64encode(b"not json").decode(),
    base64.urlsafe_b64encode(b"[" * 5000).decode(),
    "!!!",
    "é",
    "x" * 1025,
]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/projects/default/models",
        "/api/v1/projects/default/models/calc/versions",
        "/api/v1/projects/default/runs",
        "/api/v1/audit",
    ],
)
def test_forged_cursors_are_422_naming_the_cursor(
    http: httpx.Client, calc_model: int, path: str
) -> None:
    for cursor in FORGED:
        response = http.get(path, params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["error"]["field"] == "cursor"
    assert http.get(path).status_code == 200


def test_cursors_round_trip_and_hold_exactly_their_fields() -> None:
    assert decode_cursor(encode_cursor({"id": 7}), {"id": int}) == {"id": 7}
    assert decode_cursor(encode_cursor({"name": "churn"}), {"name": str}) == {"name": "churn"}
    for cursor in FORGED[:8]:
        with pytest.raises(InvalidInputError, match="not one this server issued") as info:
            decode_cursor(cursor, {"id": int})
        assert info.value.field == "cursor"
    with pytest.raises(InvalidInputError):
        decode_cursor(_cursor({"name": "a\x00b"}), {"name": str})


# Non-finite numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ('{"metrics": {"auc": NaN}}', "metrics.auc", "NaN"),
        ('{"metrics": {"auc": Infinity}}', "metrics.auc", "Infinity"),
        ('{"metrics": {"auc": -Infinity}}', "metrics.auc", "-Infinity"),
        ('{"metrics": {"auc": 1e400}}', "metrics.auc", "past 1e308"),
        ('{"params": {"lr": [1, NaN]}}', "params.lr.1", "NaN"),
        ('{"smoke": [{"inputs": [{}], "outputs": [{}], "rtol": NaN}]}', "smoke.0.rtol", "NaN"),
    ],
)
def test_non_finite_numbers_are_422_naming_the_field(
    http: httpx.Client, calc_model: int, body: str, field: str, says: str
) -> None:
    path = (
        "/api/v1/deployments"
        if "smoke" in body
        else "/api/v1/projects/default/models/calc/versions"
    )
    response = http.post(path, content=body.encode(), headers={"content-type": "application/json"})
    message = refused(response, 422, field)
    assert says in message
    assert "must be finite" in message


# Lone surrogates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/v1/projects/default/models",
            '{"name": "m", "description": "\\ud800"}',
            "description",
        ),
        ("/api/v1/projects/default/models", '{"name": "m\\udfff"}', "name"),
        ("/api/v1/projects/default/models", '{"name": "m", "tags": {"k": "\\ud83d"}}', "tags.k"),
        ("/api/v1/projects/default/models", '{"name": "m", "tags": {"\\ud800": "v"}}', "tags"),
        ("/api/v1/projects", '{"name": "p", "description": "a\\ud800b"}', "description"),
        (
            "/graphql",
            '{"query": "{ projects { name } }", "variables": {"x": "\\udc00"}}',
            "variables.x",
        ),
    ],
)
def test_lone_surrogates_are_422_and_never_reach_the_store(
    http: httpx.Client, path: str, body: str, field: str
) -> None:
    response = http.post(path, content=raw_json(body), headers={"content-type": "application/json"})
    assert "lone UTF-16 surrogate" in refused(response, 422, field)
    assert http.get("/api/v1/projects/default/models").json()["items"] == []
    assert [p["name"] for p in http.get("/api/v1/projects").json()] == ["default"]
    escaped_pair = http.post(  # a whole pair is text: 😀
        "/api/v1/projects/default/models",
        content=b'{"name": "m", "description": "\\ud83d\\ude00"}',
        headers={"content-type": "application/json"},
    )
    assert escaped_pair.status_code == 201, escaped_pair.text
    assert escaped_pair.json()["description"] == "\U0001f600"


def test_strict_json_names_what_it_refuses() -> None:
    for body, field in [
        (b'{"a": {"b": [0, 1, NaN]}}', "a.b.2"),
        (b'[{"x": "\\ud800"}]', "0.x"),
        (b'{"n": 9223372036854775808}', "n"),
        (b'{"n": -9223372036854775809}', "n"),
        (b'{"a": ["ok", "b\\u0000"]}', "a.1"),
        (b'{"a": {"\\u0000": 1}}', "a"),
    ]:
        with pytest.raises(InvalidInputError) as info:
            check_json_body(body)
        assert info.value.field == field, body
    check_json_body(b'{"n": 9223372036854775807, "m": -9223372036854775808, "f": 1e308}')
    check_json_body(b'{"id": "1234567890123456789012345"}')  # long digits in a string
    check_json_body(b'{"path": "C:\\\\u0000"}')  # a backslash, then "u0000": text
    for body, says in [
        (b"\xff{}", "not UTF-8"),
        (b"[" * 2000 + b"]" * 2000, "more than 1024 deep"),
        (b"{bad", "not valid JSON"),
    ]:
        with pytest.raises(InvalidInputError, match=says) as info:
            check_json_body(body)
        assert info.value.field == "body"


def test_nul_characters_are_422_on_both_stores(database_url: str, tmp_path: Path) -> None:
    """PostgreSQL's text cannot hold a NUL: a name, filter or description with one was a
    database error (500, connection dropped) there, in a body or in the URL."""
    settings = make_settings(tmp_path / "home", database_url)
    from funade.store import create_database, upgrade

    db = create_database(settings.resolved_database_url)
    upgrade(db)
    key = bootstrap(settings, db).admin_key
    app = create_app(settings, db, ArtifactStore.from_settings(settings))
    try:
        with (
            serve(app) as url,
            httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}) as http,
        ):
            for path, body, field in [
                (
                    "/api/v1/projects/default/models",
                    {"name": "m", "description": "a\x00"},
                    "description",
                ),
                ("/api/v1/projects/default/models", {"name": "m", "tags": {"k": "\x00"}}, "tags.k"),
                ("/api/v1/keys", {"name": "k\x00", "scopes": ["read"]}, "name"),
                ("/api/v1/projects/default/runs", {"pipeline": "p", "spec": {"\x00": 1}}, "spec"),
            ]:
                message = refused(http.post(path, json=body), 422, field)
                assert "NUL character" in message
            for path, field in [
                ("/api/v1/projects/a%00b", "path"),
                ("/api/v1/deployments/x%00", "path"),
                ("/api/v1/projects/default/models?q=a%00", "q"),
                ("/api/v1/audit?action=%00", "action"),
            ]:
                assert "NUL character (%00)" in refused(http.get(path), 422, field)
            assert http.get("/api/v1/projects/default/models").json()["items"] == []
    finally:
        db.dispose()


# Names ending in a newline ----------------------------------------------------------------


@pytest.mark.parametrize("check", [check_project_name, check_model_name, check_alias_name])
def test_no_name_may_end_in_a_newline(check: Callable[[str], str]) -> None:
    check("production")
    for bad in ("production\n", "production\r\n", "\nproduction"):
        with pytest.raises(InvalidNameError):
            check(bad)
    with pytest.raises(InvalidNameError):
        check_tags({"branch\n": "main"})


def test_names_ending_in_a_newline_are_refused_over_http(
    http: httpx.Client, calc_model: int
) -> None:
    refused(http.post("/api/v1/projects", json={"name": "p\n"}), 422, "name", "invalid_name")
    refused(
        http.post("/api/v1/projects/default/models", json={"name": "m\n"}),
        422,
        "name",
        "invalid_name",
    )
    refused(
        http.put("/api/v1/projects/default/models/calc/aliases/prod%0A", json={"version": 1}),
        422,
        "alias",
        "invalid_name",
    )
    refused(
        http.post("/api/v1/deployments", json={"name": "d\n", "model": "calc"}),
        422,
        "name",
        "invalid_name",
    )
    response = http.post(
        "/api/v1/projects/default/schedules",
        json={"name": "s\n", "source": "/x/train.py:training", "cron": "0 3 * * *"},
    )
    refused(response, 422, "name")
    assert [p["name"] for p in http.get("/api/v1/projects").json()] == ["default"]


def test_null_in_a_schedule_patch_leaves_the_field_as_it_is(http: httpx.Client) -> None:
    """Found by the fuzz run: {"params": null} was stored, and every read of the schedule
    then failed (500)."""
    path = "/api/v1/projects/default/schedules"
    body = {
        "name": "s",
        "source": "/x/t.py:train",
        "cron": "0 3 * * *",
        "env": "prd",
        "params": {"a": 1},
        "paused": True,
    }
    assert http.post(path, json=body).status_code == 201
    fields = ("source", "cron", "timezone", "params", "misfire", "max_concurrent", "paused")
    nulls = dict.fromkeys(fields)
    response = http.patch(f"{path}/s", json=nulls)
    assert response.status_code == 200, response.text
    after = http.get(f"{path}/s").json()
    assert (after["params"], after["cron"], after["paused"], after["env"]) == (
        {"a": 1},
        "0 3 * * *",
        True,
        "prd",
    )
    assert http.patch(f"{path}/s", json={"env": None}).json()["env"] is None


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_a_time_the_store_cannot_keep_in_utc_is_422(http: httpx.Client, moment: str) -> None:
    """Times are stored in UTC: these were an OverflowError in the database layer (500)."""
    runs = "/api/v1/projects/default/runs"
    refused(
        http.post(runs, json={"pipeline": "p", "spec": {}, "scheduled_for": moment}),
        422,
        "scheduled_for",
    )
    refused(
        http.post("/api/v1/keys", json={"name": "k", "scopes": ["read"], "expires_at": moment}),
        422,
        "expires_at",
    )
    made = http.post(runs, json={"pipeline": "p", "spec": {}}).json()
    run, runner = made["id"], {"authorization": f"Bearer {made['token']}"}  # its own token
    events = f"/api/v1/runs/{run}/events"
    refused(
        http.post(events, json={"run": {"started_at": moment}}, headers=runner),
        422,
        "run.started_at",
    )
    step = {"instance": "a", "node": "a", "state": "running", "finished_at": moment}
    refused(http.post(events, json={"steps": [step]}, headers=runner), 422, "steps.0.finished_at")
    assert http.get(f"/api/v1/runs/{run}").json()["started_at"] is not None


# Unbounded text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/v1/projects/default/models",
            {"name": "m", "description": "d" * 10_001},
            "description",
        ),
        ("/api/v1/projects/default/models", {"name": "m", "tags": {"k": "v" * 513}}, "tags.k"),
        (
            "/api/v1/projects/default/models",
            {"name": "m", "tags": {f"k{i}": "v" for i in range(257)}},
            "tags",
        ),
        ("/api/v1/projects", {"name": "p", "description": "d" * 10_001}, "description"),
        ("/api/v1/keys", {"name": "k" * 129, "scopes": ["read"]}, "name"),
        ("/api/v1/projects/default/runs", {"pipeline": "p" * 129, "spec": {}}, "pipeline"),
        (
            "/api/v1/projects/default/runs",
            {"pipeline": "p", "spec": {}, "params": {f"p{i}": i for i in range(1001)}},
            "params",
        ),
        (
            "/api/v1/projects/default/runs",
            {"pipeline": "p", "spec": {}, "trigger": "t" * 17},
            "trigger",
        ),
    ],
)
def test_text_past_its_documented_length_is_422(
    http: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    refused(http.post(path, json=body), 422, field)


def test_the_limits_are_in_the_openapi_document(app_url: str) -> None:
    schemas = httpx.get(f"{app_url}/openapi.json").json()["components"]["schemas"]
    assert schemas["ModelIn"]["properties"]["description"]["maxLength"] == 10_000
    tags = schemas["ModelIn"]["properties"]["tags"]
    assert tags["maxProperties"] == 256
    assert tags["additionalProperties"]["maxLength"] == 512
    assert schemas["AliasIn"]["properties"]["version"]["maximum"] == 2**31 - 1
    assert schemas["VersionIn"]["properties"]["params"]["maxProperties"] == 1000


# GraphQL ----------------------------------------------------------------------------------


def test_an_empty_or_missing_graphql_query_is_422_in_our_error_shape(http: httpx.Client) -> None:
    message = refused(http.post("/graphql", json={"query": ""}), 422, "query")
    assert message.startswith("The request has an empty query.")
    refused(http.post("/graphql", json={"variables": {}}), 422, "query")
    assert http.post("/graphql", json={}).status_code == 422
    refused(http.post("/graphql", json={"query": None}), 422, "query")
    two = "query A { projects { name } } query B { projects { name } }"
    unknown = http.post("/graphql", json={"query": two, "operationName": "C"})
    assert 'Unknown operation named "C"' in refused(unknown, 422, "operationName")
    assert http.post("/graphql", json={"query": "{ projects { name } }"}).status_code == 200


def _errors(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] is None  # refused before any resolver ran
    return [e["message"] for e in body["errors"]]


def test_graphql_refuses_deep_aliased_and_long_queries_before_running_them(
    http: httpx.Client,
) -> None:
    deepest = "{ projects { models { versions { run { steps { instance } } } } } }"
    assert http.post("/graphql", json={"query": deepest}).json() == {
        "data": {"projects": [{"models": []}]}
    }
    too_deep = (
        "{ projects { models { versions { run { steps { a { b { c { d { e } } } } } } } } } }"
    )
    messages = _errors(http.post("/graphql", json={"query": too_deep}))
    assert "'anonymous' exceeds maximum operation depth of 8" in messages
    aliased = "{ " + " ".join(f"a{i}: projects {{ name }}" for i in range(16)) + " }"
    assert _errors(http.post("/graphql", json={"query": aliased})) == [
        "16 aliases found. Allowed: 15"
    ]
    long = "{ " + " ".join(["projects { name }"] * 600) + " }"
    assert _errors(http.post("/graphql", json={"query": long})) == [
        "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    ]


# Authentication before the body -------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer fnd_123456789012_nope"}, {"x-api-key": "garbage"}],
)
def test_a_request_without_a_valid_key_is_401_whatever_its_body(
    app_url: str, settings: Settings, headers: dict[str, str]
) -> None:
    path = "/api/v1/projects/default/models"
    too_big = b"x" * (settings.max_json_bytes + 1)

    def chunks() -> Iterator[bytes]:  # no content-length: the size is learnt as it streams
        yield b'{"name": "' + b"x" * settings.max_json_bytes
        yield b'"}'

    with httpx.Client(base_url=app_url, headers=headers) as http:
        for content in (b"{bad", b'{"metrics": NaN}', raw_json('"\\ud800"'), too_big, chunks()):
            response = http.post(
                path, content=content, headers={"content-type": "application/json"}
            )
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "unauthenticated"
            assert response.headers["www-authenticate"] == "Bearer"
        graphql = http.post(
            "/graphql", content=b"{bad", headers={"content-type": "application/json"}
        )
        assert graphql.status_code == 401
        upload = http.put(f"/api/v1/projects/default/artifacts/sha256:{'0' * 64}", content=too_big)
        assert upload.status_code == 401


def test_every_keyed_route_checks_the_key_before_the_body(
    app_url: str, settings: Settings, database: Database
) -> None:
    """The route list of tests/api/test_route_auth.py: each needs a key by the middleware's
    rule too, and answers a malformed or non-strict body without a key with 401 (an oversized
    one: test_a_request_without_a_valid_key_is_401_whatever_its_body)."""
    routes = _routes(settings, database)
    assert len(routes) >= 40
    with httpx.Client(base_url=app_url) as http:
        for method, path in routes:
            assert needs_key(method, path.split("?")[0]), (method, path)
            for body in (b"{bad", b'{"a": NaN}'):
                response = http.request(
                    method, path, content=body, headers={"content-type": "application/json"}
                )
                assert response.status_code == 401, (method, path, body[:10], response.text)
    for public in ("/api/v1/health", "/healthz", "/docs", "/openapi.json", "/", "/signin"):
        assert not needs_key("GET", public)
    assert not needs_key("GET", "/graphql")
    assert needs_key("POST", "/graphql")


def test_with_a_valid_key_the_body_is_then_checked(http: httpx.Client, settings: Settings) -> None:
    path = "/api/v1/projects/default/models"
    message = refused(
        http.post(path, content=b"{bad", headers={"content-type": "application/json"}),
        422,
        "body",
    )
    assert message.startswith("The request body is not valid JSON")
    big = http.post(
        path,
        content=b"x" * (settings.max_json_bytes + 1),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413


# The OpenAPI document lists every error ---------------------------------------------------


def test_every_operation_documents_its_errors_in_the_error_shape(app_url: str) -> None:
    document = httpx.get(f"{app_url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "field", "value", "fix"}
    public = {("get", "/api/v1/health"), ("get", "/healthz"), ("get", "/graphql")}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if (method, path) in public:
                assert not set(responses) & {"401", "403"}, (method, path)
                continue
            expected = {"401", "403", "404"}
            if "requestBody" in operation:
                expected |= {"400", "413", "422"}
            if method in ("post", "put", "patch", "delete"):
                expected.add("409")
            assert expected <= set(responses), (method, path, sorted(responses))
            for status in expected:
                content = responses[status]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
            assert operation["security"] == [{"apiKey": []}]


# The model server ---------------------------------------------------------------------------


def _tensor(**fields: Any) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1.0, 2.0], **fields}


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (
            {"inputs": [_tensor(datatype={"FP64": 1})]},
            "inputs[0].datatype",
            "has datatype {'FP64': 1}, which is not an Open Inference Protocol datatype",
        ),
        (
            {"inputs": [_tensor(datatype=["FP64"])]},
            "inputs[0].datatype",
            "has datatype ['FP64'], which is not",
        ),
        ({"inputs": [_tensor(datatype=None)]}, "inputs[0].datatype", "has datatype None"),
        (
            {"inputs": [_tensor(shape=[0, 2**64 - 1], data=[])]},
            "inputs[0].shape",
            "which no array can have",
        ),
        (
            {"inputs": [_tensor(shape=[1] * 65, data=[1.0])]},
            "inputs[0].shape",
            "which no array can have",
        ),
        (
            {"inputs": [_tensor(shape=[1, 2**63])]},
            "inputs[0].data",
            "holds 9223372036854775808 elements, but its data has 2",
        ),
        ({"inputs": [_tensor(name={"x": 1})]}, "inputs[0].name", "has no name"),
        ({"inputs": [_tensor(parameters=[1])]}, "inputs[0].parameters", "not an object"),
        ({"inputs": {"x": 1}}, "inputs", "not a list"),
        ({"inputs": [_tensor()], "outputs": {"double": 1}}, "outputs", "not a list"),
        (
            {"inputs": [_tensor()], "outputs": [{"name": ["double"]}]},
            "outputs[0].name",
            "has no name",
        ),
        ({"inputs": [_tensor()], "id": {"a": 1}}, "id", "not a string"),
    ],
)
def test_wrong_json_types_in_a_v2_request_are_400_naming_the_field(
    tmp_path: Path, body: dict[str, Any], field: str, says: str
) -> None:
    with running(arithmetic_package(tmp_path / "pkg")) as (url, _), httpx.Client() as http:
        response = http.post(f"{url}/v2/models/calc/infer", json=body)
        assert response.status_code == 400, response.text
        answer = response.json()
        assert answer["field"] == field
        assert says in answer["error"]
        assert "model failed" not in answer["error"]
        assert http.get(f"{url}/v2/health/ready").status_code == 200


def test_a_binary_tensor_of_a_shape_no_array_has_is_400(tmp_path: Path) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP64",
                    "shape": [1] * 65,
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    ).encode()
    with running(arithmetic_package(tmp_path / "pkg")) as (url, _), httpx.Client() as http:
        response = http.post(
            f"{url}/v2/models/calc/infer",
            content=header + np.float64(1.0).tobytes(),
            headers={
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(header)),
            },
        )
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "inputs[0].shape"
        assert "which no array can have" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            '{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}], '
            '"id": "\\ud800"}',
            "id",
        ),
        (
            '{"inputs": [{"name": "\\ud800", "datatype": "FP64", "shape": [1, 2], '
            '"data": [1, 2]}]}',
            "inputs[0].name",
        ),
        (
            '{"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["\\udfff"]}]}',
            "inputs[0].data[0]",
        ),
        (
            '{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [NaN, 1]}], '
            '"id": "\\ud800"}',
            "id",
        ),
    ],
)
def test_lone_surrogates_in_a_v2_request_are_400(tmp_path: Path, body: str, field: str) -> None:
    with running(arithmetic_package(tmp_path / "pkg")) as (url, _), httpx.Client() as http:
        response = http.post(
            f"{url}/v2/models/calc/infer",
            content=raw_json(body),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["field"] == field
        assert "lone UTF-16 surrogate" in response.json()["error"]
        nan = http.post(  # NaN alone is still read (tritonclient writes it)
            f"{url}/v2/models/calc/infer",
            content=b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], '
            b'"data": [NaN, 1]}]}',
            headers={"content-type": "application/json"},
        )
        assert nan.status_code == 200, nan.text


def test_nesting_past_the_parser_is_400_not_a_model_failure(tmp_path: Path) -> None:
    with running(arithmetic_package(tmp_path / "pkg")) as (url, _), httpx.Client() as http:
        for body in (b"[" * 100_000 + b"]" * 100_000, b"[NaN, " * 5000 + b"1" + b"]" * 5000):
            response = http.post(
                f"{url}/v2/models/calc/infer",
                content=body,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, response.text[:300]
            assert response.json()["field"] == "body"


def test_finding_the_subject_of_a_long_strip_never_asks_for_gigapixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 40-megapixel strip (the most a photo may have) with ink along its whole length: the
    square around that subject, with margins, would be 120,000 pixels wide (14 gigapixels).
    ``ImageInput(find=True)`` shrinks the strip first; every image it makes stays small."""
    from PIL import Image

    strip = np.full((1000, 40_000), 220, dtype=np.uint8)
    strip[400:600, 100:-100] = 20
    buffer = io.BytesIO()
    Image.fromarray(strip, mode="L").save(buffer, "PNG")
    made: list[tuple[int, int]] = []
    new = Image.new

    def guarded_new(mode: str, size: tuple[int, int], *args: Any, **kwargs: Any) -> Any:
        made.append(size)
        assert size[0] * size[1] <= 2048 * 2048, f"asked for a {size} image"
        return new(mode, size, *args, **kwargs)

    monkeypatch.setattr(Image, "new", guarded_new)
    image = ImageInput(find=True, margin=1.0, invert=True)
    decoded = decode_images([buffer.getvalue()], image, "image", "FP32", [-1, 1, 8, 8])
    assert decoded.shape == (1, 1, 8, 8)
    assert made, "the padded square was made"
    assert decoded[0, 0, 4].max() > decoded[0, 0, 0].max()  # the bar, in the middle row


def test_the_model_server_answers_unknown_routes_in_its_error_shape(tmp_path: Path) -> None:
    with running(arithmetic_package(tmp_path / "pkg")) as (url, _), httpx.Client() as http:
        missing = http.get(f"{url}/v3/nothing")
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"
        wrong = http.delete(f"{url}/v2/health/live")
        assert wrong.status_code == 405
        assert wrong.json()["code"] == "method_not_allowed"


def test_the_model_server_serves_its_openapi_document(tmp_path: Path) -> None:
    with running(arithmetic_package(tmp_path / "pkg")) as (url, _):
        document = httpx.get(f"{url}/openapi.json").json()
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["parameters"][0]["schema"] == {"type": "string", "enum": ["calc"]}
    assert set(infer["responses"]) == {
        "200",
        "400",
        "404",
        "408",
        "413",
        "415",
        "500",
        "503",
        "504",
    }
    row = document["components"]["schemas"]["InferenceRequest"]["properties"]["inputs"]
    assert row["items"]["anyOf"][0]["properties"]["shape"]["const"] == [1, 2]


# The gateway --------------------------------------------------------------------------------


def _raw(url: str, request: bytes) -> bytes:
    """Send ``request`` as bytes (httpx would refuse to send what a hostile client sends)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_a_header_the_gateway_forwards_must_be_ascii(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],  # noqa: F811
) -> None:
    """It decoded them as UTF-8 to forward them: a byte 0xff was a 500."""
    url, _ = gateway
    key = calc.client.create_key("hostile", ["predict"], project="default").key
    body = b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}'
    for header in (b"Content-Type: application/json\xff", b"X-Request-Id: \xff\xfe"):
        answer = _raw(
            url,
            b"POST /v2/models/calc/infer HTTP/1.1\r\nHost: gateway\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\n" + header + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body,
        )
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert b"holds bytes that are not printable ASCII" in answer
    ok = httpx.post(
        f"{url}/v2/models/calc/infer",
        content=body,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert ok.status_code == 200, ok.text


def test_an_encoded_line_break_in_the_path_stays_encoded_on_the_way_to_the_replica(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],  # noqa: F811
) -> None:
    """The gateway forwards the path as the client sent it: decoded, a %0d%0a would end the
    request line to the replica and let a client write headers (a token) of its own."""
    url, _ = gateway
    key = calc.client.create_key("smuggler", ["predict"], project="default").key
    for path in (
        b"/v2/models/calc/infer%0d%0aAuthorization:%20Bearer%20x%0d%0a",
        b"/v2/models/calc%0d%0a/infer",
        b"/v1/models/calc:predict%0aX:%201",
    ):
        answer = _raw(
            url,
            b"POST " + path + b" HTTP/1.1\r\nHost: gateway\r\nX-API-Key: " + key.encode()
            + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )  # fmt: skip
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:300]
        assert b'"error"' in answer
    # the line break, still encoded, reached the replica as part of a path it does not serve
    answer = _raw(
        url,
        b"POST /v2/models/calc/infer%0d%0a HTTP/1.1\r\nHost: gateway\r\nX-API-Key: "
        + key.encode() + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )  # fmt: skip
    assert answer.startswith((b"HTTP/1.1 404 ", b"HTTP/1.1 405 ")), answer[:300]
    assert b"funade-revision: 1" in answer.lower(), "answered by the replica, whole"


def test_a_deployment_replica_answers_unknown_paths_in_json(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],  # noqa: F811
) -> None:
    url, _ = gateway
    key = calc.client.create_key("hostile", ["predict"], project="default").key
    response = httpx.post(
        f"{url}/v2/models/calc/infer%00", json={}, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
