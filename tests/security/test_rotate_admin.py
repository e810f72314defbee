"""`funade keys rotate-admin`: installs that ran an earlier version may have leaked their admin
key to model code; one command replaces it and revokes the old one, with what hangs off it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from funade.api.schemas import RunIn
from funade.auth.keys import parse_key
from funade.bootstrap import bootstrap, open_database, read_credentials
from funade.client import Client
from funade.errors import AuthenticationError
from funade.settings import Settings, load_settings
from funade.store.schema import AuditEvent
from funade.ui.session import sign_in
from tests.conftest import Result


def _home() -> Settings:
    return load_settings()


def test_rotate_admin_replaces_the_local_key_and_revokes_the_old(
    cli: Callable[..., Result],
) -> None:
    settings = _home()
    db = open_database(settings, migrate=True)
    old = bootstrap(settings, db).admin_key
    session_text, _ = sign_in(db, old, client_ip=None)  # a dashboard session of the old key
    with Client(settings=settings) as client:
        run = client.create_run(RunIn(pipeline="p", spec={"name": "p"}))
    assert run.token is not None

    result = cli("keys", "rotate-admin")
    assert result.code == 0, result.err
    new = read_credentials(settings)
    assert new is not None
    assert new != old
    assert f"the old one ({parse_key(old).key_id}) is revoked" in result.out
    assert parse_key(new).key_id in result.out
    assert new not in result.out, "the key is saved, not printed"
    assert (settings.credentials_file.stat().st_mode & 0o777) == 0o600

    from funade.auth.service import check_key

    with db.read() as session:
        for text, _what in (
            (old, "the old key"),
            (session_text, "its session"),
            (run.token, "its run"),
        ):
            with pytest.raises(AuthenticationError, match="was revoked"):
                check_key(session, text, client_ip=None)
        principal, _ = check_key(session, new, client_ip=None)
        assert principal.is_global
        assert "admin" in principal.granted
        [event] = session.query(AuditEvent).filter(AuditEvent.action == "key.rotate").all()
        assert event.details == {"replaced": parse_key(old).key_id}
    db.dispose()


def test_rotate_admin_without_a_key_makes_one(cli: Callable[..., Result]) -> None:
    settings = _home()
    open_database(settings, migrate=True).dispose()
    result = cli("keys", "rotate-admin")
    assert result.code == 0, result.err
    assert read_credentials(settings) is not None
    assert "is revoked" not in result.out


def test_rotate_admin_against_a_control_plane(
    cli: Callable[..., Result],
    app_url: str,
    admin_key: str,
    monkeypatch: pytest.MonkeyPatch,
    key_for: Callable[..., Client],
) -> None:
    project_admin = key_for(["admin"])
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", project_admin.api_key or "")
    refused = cli("keys", "rotate-admin")
    assert refused.code != 0
    assert "is not a global admin key" in refused.err + refused.out

    monkeypatch.setenv("FUNADE_API_KEY", admin_key)
    result = cli("keys", "rotate-admin")
    assert result.code == 0, result.err
    new = result.out.strip().splitlines()[-1]
    assert new.startswith("fnd_")
    with Client(url=app_url, api_key=new) as client:
        assert client.whoami().scopes == ["admin"]
    with (
        Client(url=app_url, api_key=admin_key) as client,
        pytest.raises(AuthenticationError, match="was revoked"),
    ):
        client.whoami()
