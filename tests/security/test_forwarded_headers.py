"""X-Forwarded-For is believed only from the proxies in ``trusted_proxies`` (none by default),
on the control plane and the gateway alike.

The attack: uvicorn trusted the header from loopback, so a request from 127.0.0.1 saying
``X-Forwarded-For: 10.1.2.3`` passed an allowlist of 10.0.0.0/8 (the control plane's, a key's
``allow_cidrs``, a deployment's at the gateway) and wrote 10.1.2.3 into the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.auth.forwarded import TrustedProxies
from funade.bootstrap import bootstrap
from funade.gateway.app import Gateway
from funade.settings import Settings
from funade.store import Database
from tests.deploy.conftest import Plane, calc, plane, until  # noqa: F401 - shared fixtures
from tests.security.platform import funade_up
from tests.servers import serve, serve_gateway_app

SPOOF = {"x-forwarded-for": "10.1.2.3"}
LOOPBACK = ["127.0.0.1/32"]
BODY = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}


def bearer(key: str, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **headers}


def assert_error(response: httpx.Response, status: int, code: str, message: str) -> None:
    """The control plane's ``{"error": {"code", "message"}}``, or the gateway's protocol shape
    ``{"error": "<message> <fix>", "code"}``."""
    assert response.status_code == status, response.text
    doc = response.json()
    if isinstance(doc["error"], str):
        assert doc["code"] == code
        assert message in doc["error"], doc["error"]
        return
    assert doc["error"]["code"] == code
    assert message in doc["error"]["message"], doc["error"]["message"]


@contextmanager
def control_plane(settings: Settings, database: Database, **extra: Any) -> Iterator[str]:
    """A real control plane over the test store, with settings ``extra`` (e.g. allowlists)."""
    changed = Settings(home=settings.home, database_url=settings.resolved_database_url, **extra)
    app = create_app(changed, database, ArtifactStore.from_settings(changed))
    with serve(app) as url:
        yield url


# The rule ------------------------------------------------------------------------------------


def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
    assert proxies.client("127.0.0.1", ["203.0.113.7"]) == "203.0.113.7"
    # What the client wrote itself is to the left of what the proxies appended.
    assert proxies.client("127.0.0.1", ["10.9.9.9, 198.51.100.2, 10.0.0.5"]) == "198.51.100.2"
    assert proxies.client("127.0.0.1", ["10.9.9.9", "198.51.100.2", "10.0.0.5"]) == "198.51.100.2"
    assert proxies.client("127.0.0.1", ["203.0.113.7:4711"]) == "203.0.113.7"
    assert proxies.client("127.0.0.1", ["[2001:db8::1]:4711"]) == "2001:db8::1"
    assert proxies.client("127.0.0.1", ["10.0.0.9, 10.0.0.5"]) == "10.0.0.9"  # all proxies
    assert proxies.client("127.0.0.1", []) == "127.0.0.1"
    # A trusted proxy that wrote something that is not an address: no address to believe.
    assert proxies.client("127.0.0.1", ["10.1.1.1, unknown"]) is None
    # From a peer that is not a trusted proxy, the header means nothing.
    assert proxies.client("192.0.2.1", ["10.1.2.3"]) == "192.0.2.1"
    assert TrustedProxies().client("127.0.0.1", ["10.1.2.3"]) == "127.0.0.1"


def test_trusted_proxies_must_be_networks() -> None:
    from funade.errors import InvalidInputError
    from funade.settings import load_settings

    with pytest.raises(InvalidInputError) as caught:
        load_settings(trusted_proxies=["proxy.internal"])
    assert caught.value.field == "trusted_proxies"
    assert "'proxy.internal' is not an IP network" in caught.value.message


# The control plane ---------------------------------------------------------------------------


def test_a_forwarded_header_from_loopback_passes_no_allowlist_of_the_control_plane(
    settings: Settings, database: Database
) -> None:
    admin = bootstrap(settings, database).admin_key
    with control_plane(settings, database, allow_cidrs=["10.0.0.0/8"]) as url:
        refused = httpx.get(f"{url}/api/v1/projects", headers=bearer(admin, **SPOOF))
    assert_error(
        refused, 403, "permission_denied", "Address '127.0.0.1' is not allowed to use this"
    )
    assert refused.json()["error"]["field"] == "client_ip"

    with control_plane(settings, database) as url, httpx.Client(base_url=url) as http:
        made = http.post(
            "/api/v1/keys",
            json={"name": "tenants", "scopes": ["read"], "allow_cidrs": ["10.0.0.0/8"]},
            headers=bearer(admin),
        )
        assert made.status_code == 201, made.text
        limited = made.json()["key"]
        spoofed = http.get("/api/v1/projects", headers=bearer(limited, **SPOOF))
        assert_error(spoofed, 403, "permission_denied", "this request came from 127.0.0.1")
        assert spoofed.json()["error"]["field"] == "client_ip"
        # The dashboard reads the same address.
        signin = http.post(
            "/signin", data={"key": limited, "next": "/"}, headers={**SPOOF, "origin": url}
        )
        assert signin.status_code == 403
        assert "this request came from 127.0.0.1" in signin.text

        created = http.post("/api/v1/projects", json={"name": "p"}, headers=bearer(admin, **SPOOF))
        assert created.status_code == 201, created.text
        events = http.get("/api/v1/audit?action=project.create", headers=bearer(admin)).json()
    assert events["items"][0]["client_ip"] == "127.0.0.1", "the audit log records the peer"


def test_a_trusted_proxys_forwarded_address_is_the_client(
    settings: Settings, database: Database
) -> None:
    admin = bootstrap(settings, database).admin_key
    cidrs = ["10.0.0.0/8"]
    with (
        control_plane(settings, database, allow_cidrs=cidrs, trusted_proxies=LOOPBACK) as url,
        httpx.Client(base_url=url) as http,
    ):
        allowed = http.get("/api/v1/projects", headers=bearer(admin, **SPOOF))
        assert allowed.status_code == 200, allowed.text
        direct = http.get("/api/v1/projects", headers=bearer(admin))
        assert_error(direct, 403, "permission_denied", "Address '127.0.0.1' is not allowed")
        # The proxy appended the real client; the left entry is the client's own claim.
        claimed = {"x-forwarded-for": "10.1.2.3, 192.0.2.9"}
        spoofed = http.get("/api/v1/projects", headers=bearer(admin, **claimed))
        assert_error(spoofed, 403, "permission_denied", "Address '192.0.2.9' is not allowed")
        created = http.post("/api/v1/projects", json={"name": "p"}, headers=bearer(admin, **SPOOF))
        assert created.status_code == 201, created.text
        events = http.get(
            "/api/v1/audit?action=project.create", headers=bearer(admin, **SPOOF)
        ).json()
    assert events["items"][0]["client_ip"] == "10.1.2.3"


# The gateway ---------------------------------------------------------------------------------


def test_a_forwarded_header_from_loopback_passes_no_allowlist_at_the_gateway(
    calc: Plane,  # noqa: F811
    database: Database,
) -> None:
    limited = calc.client.create_key(
        "tenants", ["predict"], project="default", allow_cidrs=["10.0.0.0/8"]
    ).key
    plain = Gateway(database, refresh_seconds=0.1)
    trusting = Gateway(database, refresh_seconds=0.1, trusted_proxies=LOOPBACK)
    with serve_gateway_app(plain) as url, serve_gateway_app(trusting) as trusted_url:
        predict = "/v2/models/calc/infer"
        spoofed = httpx.post(f"{url}{predict}", json=BODY, headers=bearer(limited, **SPOOF))
        assert_error(spoofed, 403, "permission_denied", "this request came from 127.0.0.1")
        trusted = httpx.post(f"{trusted_url}{predict}", json=BODY, headers=bearer(limited, **SPOOF))
        assert trusted.status_code == 200, trusted.text

        calc.client.update_deployment(
            "calc", policy={"public": True, "allow_cidrs": ["10.0.0.0/8"]}
        )
        for app in (plain, trusting):
            until(lambda a=app: a.table.routes["calc"].policy.public, 10, "the new policy")
        spoofed = httpx.post(f"{url}{predict}", json=BODY, headers=SPOOF)
        assert_error(spoofed, 403, "forbidden", "Address 127.0.0.1 may not call 'calc'.")
        page = httpx.get(f"{url}/try/calc/info", headers=SPOOF)  # the try-it page too
        assert_error(page, 403, "forbidden", "Address 127.0.0.1 may not call 'calc'.")
        assert httpx.post(f"{trusted_url}{predict}", json=BODY, headers=SPOOF).status_code == 200
        assert httpx.get(f"{trusted_url}/try/calc/info", headers=SPOOF).status_code == 200
        outside = httpx.post(f"{trusted_url}{predict}", json=BODY)  # the proxy itself
        assert_error(outside, 403, "forbidden", "Address 127.0.0.1 may not call 'calc'.")


# What `funade up` starts ---------------------------------------------------------------------


def test_funade_up_believes_no_forwarded_header(tmp_path: Path) -> None:
    """The servers `funade up` runs (the control plane, and the gateway it starts) are uvicorn
    with its own proxy handling off: a key limited to 10.0.0.0/8 stays refused."""
    with funade_up(tmp_path / "home") as up:
        with up.client() as client:
            limited = client.create_key("tenants", ["read"], allow_cidrs=["10.0.0.0/8"]).key
        plane = httpx.get(f"{up.url}/api/v1/projects", headers=bearer(limited, **SPOOF))
        assert_error(plane, 403, "permission_denied", "this request came from 127.0.0.1")
        gateway = httpx.get(f"{up.gateway_url}/metrics", headers=bearer(limited, **SPOOF))
        assert_error(gateway, 403, "permission_denied", "this request came from 127.0.0.1")
