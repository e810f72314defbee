"""API keys through the API: shown once, stored hashed, scoped, revocable, expiring, audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from funade.api.routes.keys import loopback_warning
from funade.client import Client
from funade.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from funade.store import Database
from funade.store.schema import ApiKey


def test_key_is_shown_once_and_stored_hashed(admin: Client, database: Database) -> None:
    new = admin.create_key("ci", ["write"], project="default")
    assert new.key.startswith(f"fnd_{new.id}_")
    listed = {k.id: k for k in admin.list_keys()}
    assert new.id in listed
    assert "key" not in listed[new.id].model_dump()
    with database.read() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.id == new.id))
        assert row is not None
        secret = new.key.split("_", 2)[2]
        assert secret not in row.secret_hash
        assert len(row.secret_hash) == 64


def test_revoked_key_stops_working(admin: Client, key_for: Callable[..., Client]) -> None:
    reader = key_for(["read"])
    me = reader.whoami()
    assert me.project == "default"
    revoked = admin.revoke_key(me.key_id or "")
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationError, match="was revoked"):
        reader.whoami()
    assert me.key_id not in {k.id for k in admin.list_keys()}
    assert me.key_id in {k.id for k in admin.list_keys(include_revoked=True)}


def test_expired_key_stops_working(admin: Client, database: Database, app_url: str) -> None:
    new = admin.create_key(
        "short", ["read"], project="default", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    with database.session() as session:
        row = session.get(ApiKey, new.id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with (
        Client(url=app_url, api_key=new.key) as client,
        pytest.raises(AuthenticationError, match="expired"),
    ):
        client.whoami()


def test_bad_scope_and_past_expiry_are_refused(admin: Client) -> None:
    with pytest.raises(InvalidInputError, match="Scope 'root' does not exist") as info:
        admin.create_key("x", ["root"], project="default")
    assert info.value.field == "scopes"
    with pytest.raises(InvalidInputError, match="in the past"):
        admin.create_key("x", ["read"], expires_at=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(InvalidInputError, match="at least one scope"):
        admin.create_key("x", [], project="default")
    with pytest.raises(NotFoundError, match="Project 'nope'"):
        admin.create_key("x", ["read"], project="nope")


def test_project_admin_manages_only_its_project(
    admin: Client, key_for: Callable[..., Client]
) -> None:
    admin.create_project("other")
    other_key = admin.create_key("other-reader", ["read"], project="other")
    project_admin = key_for(["admin"], project="default")
    made = project_admin.create_key("mine", ["read"], project="default")
    assert made.project == "default"
    with pytest.raises(PermissionDeniedError, match="global"):
        project_admin.create_key("global", ["admin"])
    with pytest.raises(NotFoundError):
        project_admin.create_key("theirs", ["read"], project="other")
    assert other_key.id not in {k.id for k in project_admin.list_keys()}
    with pytest.raises(NotFoundError, match="does not exist"):
        project_admin.revoke_key(other_key.id)


def test_key_changes_are_audited(admin: Client) -> None:
    new = admin.create_key("audited", ["read"], project="default")
    admin.revoke_key(new.id)
    actions = [(e.action, e.target) for e in admin.audit(action="key.").items]
    assert ("key.revoke", new.id) in actions
    assert ("key.create", new.id) in actions
    event = admin.audit(action="key.create").items[0]
    assert event.actor_name == "local-admin"
    assert event.client_ip == "127.0.0.1"


def test_use_is_recorded(admin: Client, key_for: Callable[..., Client]) -> None:
    reader = key_for(["read"])
    key_id = reader.whoami().key_id
    used = {k.id: k.last_used_at for k in admin.list_keys()}
    assert used[key_id] is not None


def test_an_expiry_without_a_time_zone_is_refused(app_url: str, admin_key: str) -> None:
    response = httpx.post(
        f"{app_url}/api/v1/keys",
        json={"name": "x", "scopes": ["read"], "expires_at": "2030-01-01T00:00:00"},
        headers={"authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"].startswith("expires_at")


@pytest.mark.parametrize(
    ("base", "warned"),
    [
        ("http://127.0.0.1:8480", True),
        ("http://127.1.2.3:8480", True),
        ("http://[::1]:8480", True),
        ("http://localhost:8480", True),
        ("http://demo.localhost:8480", True),
        ("http://192.168.1.5:8480", False),
        ("https://models.example.com", False),
        ("http://[fe80::1]:8480", False),
    ],
)
def test_a_gateway_only_this_machine_reaches_is_warned_about(base: str, warned: bool) -> None:
    warning = loopback_warning(base)
    assert (warning is not None) == warned
    if warning is not None:
        assert warning.startswith(f"The try-it link points at {base}, which only this machine")
        assert "FUNADE_GATEWAY_URL" in warning


def test_a_deployment_key_names_its_gateway_and_warns_when_no_phone_reaches_it(
    admin: Client,
) -> None:
    made = admin.create_key("app", ["predict"], project="default", deployment="churn")
    assert made.gateway_url == "http://127.0.0.1:8480"
    assert made.gateway_warning is not None
    plain = admin.create_key("ci", ["read"], project="default")
    assert plain.gateway_url is None
    assert plain.gateway_warning is None
