"""Key kinds (group tokens, sessions, sign-in links), network allowlists and prediction counts."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from funade.auth.service import add_predictions, check_key, create_key, revoke_key
from funade.errors import InvalidInputError, PermissionDeniedError
from funade.projects import create_project
from funade.store import Database
from funade.store.schema import ApiKey, utcnow


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"kind": "bogus"}, "kind", "Key kind 'bogus' does not exist"),
        ({"kind": "group"}, "deployment", "needs a deployment and an expiry"),
        ({"kind": "group", "deployment": "calc"}, "expires_at", "needs a deployment and an expiry"),
        ({"allow_cidrs": ["10.0.0.0/8", "nope"]}, "allow_cidrs", "'nope' is not an IP address"),
    ],
)
def test_bad_key_options_name_the_field(
    database: Database, options: dict[str, object], field: str, message: str
) -> None:
    with database.session() as session:
        project = create_project(session, "p")
        with pytest.raises(InvalidInputError) as caught:
            create_key(
                session, name="k", scopes=["predict"], project=project, created_by=None, **options
            )  # type: ignore[arg-type]
    assert caught.value.field == field
    assert message in caught.value.message
    with database.read() as session:
        assert session.query(ApiKey).filter(ApiKey.name == "k").count() == 0


def test_a_group_token_is_a_deployment_key_with_an_expiry(database: Database) -> None:
    with database.session() as session:
        project = create_project(session, "p")
        text, _row = create_key(
            session,
            name="Group 1",
            scopes=["predict"],
            project=project,
            created_by=None,
            kind="group",
            deployment="calc",
            expires_at=utcnow() + timedelta(hours=8),
            allow_cidrs=["192.168.0.0/16"],
        )
    with database.read() as session:
        principal, _ = check_key(session, text, client_ip=None)
    assert (principal.kind, principal.deployment) == ("group", "calc")
    assert principal.allow_cidrs == ("192.168.0.0/16",)
    principal.check_address("192.168.4.20")
    with pytest.raises(PermissionDeniedError) as caught:
        principal.check_address("127.0.0.1")
    assert caught.value.field == "client_ip"
    assert "may be used only from 192.168.0.0/16" in caught.value.message


def test_revoking_a_key_ends_its_sessions_and_counts_add_up(database: Database) -> None:
    with database.session() as session:
        _, parent = create_key(session, name="me", scopes=["admin"], project=None, created_by=None)
        _, child = create_key(
            session,
            name="dashboard: me",
            scopes=["admin"],
            project=None,
            created_by=parent.id,
            kind="session",
            parent_id=parent.id,
        )
        _, other = create_key(session, name="other", scopes=["read"], project=None, created_by=None)
        # Another global admin key: the only one may not be revoked (tests/security/).
        create_key(session, name="spare", scopes=["admin"], project=None, created_by=None)
        ids = parent.id, child.id, other.id
    with database.session() as session:
        add_predictions(session, {ids[2]: 3})
        add_predictions(session, {ids[2]: 4, "000000000000": 1})
        parent_row = session.get(ApiKey, ids[0])
        assert parent_row is not None
        revoke_key(session, parent_row)
    with database.read() as session:
        rows = {r.id: r for r in session.query(ApiKey)}
    assert rows[ids[0]].revoked_at is not None
    assert rows[ids[1]].revoked_at is not None
    assert rows[ids[2]].revoked_at is None
    assert rows[ids[2]].predictions == 7


def test_the_api_refuses_a_key_outside_its_networks(app_url: str, admin_key: str) -> None:
    admin = {"authorization": f"Bearer {admin_key}"}
    made = httpx.post(
        f"{app_url}/api/v1/keys",
        headers=admin,
        json={
            "name": "office",
            "scopes": ["read"],
            "project": "default",
            "allow_cidrs": ["10.0.0.0/8"],
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["allow_cidrs"] == ["10.0.0.0/8"]
    assert made.json()["try_url"] is None
    refused = httpx.get(
        f"{app_url}/api/v1/projects/default/models",
        headers={"authorization": f"Bearer {made.json()['key']}"},
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["field"] == "client_ip"
    assert "may be used only from 10.0.0.0/8" in refused.json()["error"]["message"]


def test_the_api_makes_group_tokens_with_a_try_link_and_qr_code(
    app_url: str, admin_key: str
) -> None:
    admin = {"authorization": f"Bearer {admin_key}"}
    body = {
        "name": "Group 1",
        "scopes": ["predict"],
        "project": "default",
        "deployment": "calc",
        "kind": "group",
    }
    missing = httpx.post(f"{app_url}/api/v1/keys", headers=admin, json=body)
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "expires_at"
    expires = (utcnow() + timedelta(hours=8)).isoformat()
    made = httpx.post(f"{app_url}/api/v1/keys", headers=admin, json={**body, "expires_at": expires})
    assert made.status_code == 201, made.text
    out = made.json()
    assert out["kind"] == "group"
    host = app_url.split("//")[1].split(":")[0]
    assert out["try_url"] == f"http://{host}:8480/try/calc#key={out['key']}"
    assert out["qr_svg"].startswith("<svg")
    assert "Try calc: Group 1" in out["qr_svg"]
    listed = httpx.get(f"{app_url}/api/v1/keys?kind=group", headers=admin).json()
    assert [k["name"] for k in listed] == ["Group 1"]
    assert listed[0]["predictions"] == 0
