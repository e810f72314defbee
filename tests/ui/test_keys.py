"""The keys page (a new key shown once, revoking) and the audit log, in a browser; who may open
them, and the API's answer to a group token without an expiry, without one."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx

from funade.client import Client
from funade.store.schema import utcnow
from tests.ui.conftest import Page, expect

Shot = Callable[[Page, str], Path]


def test_a_new_key_is_shown_once_then_revoked(
    signed_in: Page, app_url: str, admin: Client, shot: Shot
) -> None:
    page = signed_in
    page.on("dialog", lambda dialog: dialog.accept())
    admin.create_key("old-ci", ["write"], project="default")
    page.goto(f"{app_url}/keys?project=default")
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("^old-ci key write"))).to_be_visible()
    expect(page.get_by_text("No group tokens yet.")).to_be_visible()
    shot(page, "keys")

    form = page.locator("#new-key-form")
    form.get_by_label("Name").fill("churn-app")
    form.get_by_role("checkbox", name=re.compile("^read")).uncheck()
    form.get_by_role("checkbox", name=re.compile("^predict")).check()
    form.get_by_label("Expires after").select_option(label="30 days")
    form.get_by_label("Only from these networks").fill("10.0.0.0/8, 192.168.1.7")
    form.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    expect(shown.get_by_role("heading", name="New key: churn-app")).to_be_visible()
    expect(shown.get_by_text("It will not be shown again")).to_be_visible()
    key = shown.get_by_label("The key").input_value()
    assert re.fullmatch(r"fnd_\w{12}_[\w-]+", key), key
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    shown.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("alert").filter(has_text="Copied the key.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key
    row = page.locator("#keys-body tr", has_text="churn-app")
    expect(row).to_contain_text("predict")
    expect(row).to_contain_text("only from 10.0.0.0/8, 192.168.1.7")
    shot(page, "keys-new-key")
    made = next(k for k in admin.list_keys(project="default") if k.name == "churn-app")
    assert made.allow_cidrs == ["10.0.0.0/8", "192.168.1.7"]
    assert made.expires_at is not None
    assert timedelta(days=29) < made.expires_at - utcnow() <= timedelta(days=30)

    form.get_by_label("Name").fill("nothing")
    for box in form.get_by_role("checkbox").all():
        box.uncheck()
    form.get_by_role("button", name="Create key").click()
    expect(
        page.get_by_role("alert").filter(has_text="A key needs at least one scope")
    ).to_be_visible()

    row.get_by_role("button", name="Revoke churn-app").click()
    expect(row.locator("[data-state]")).to_have_text("revoked")
    refused = httpx.get(f"{app_url}/api/v1/whoami", headers={"authorization": f"Bearer {key}"})
    assert refused.status_code == 401
    page.reload()
    expect(page.locator("#keys-body tr", has_text="churn-app")).to_contain_text("revoked")
    page.get_by_label("Show").select_option("active")
    expect(page).to_have_url(re.compile(r"show=active"))
    expect(page.locator("#keys-body tr", has_text="churn-app")).to_have_count(0)
    expect(page.locator("#keys-body tr", has_text="dashboard: ")).to_have_count(0)
    page.get_by_label("Show").select_option("everything")
    expect(page.locator("#keys-body tr", has_text="dashboard: local-admin").first).to_contain_text(
        "session"
    )
    shot(page, "keys-everything")


def test_the_audit_log_filters_by_action_and_pages(
    signed_in: Page, app_url: str, admin: Client, shot: Shot
) -> None:
    page = signed_in
    for i in range(55):
        admin.create_key(f"k{i}", ["read"], project="default")
    admin.create_project("other")
    page.goto(f"{app_url}/audit?project=default")
    expect(page.get_by_role("heading", name=re.compile("^Audit log"))).to_be_visible()
    rows = page.locator("table.audit tbody tr")
    expect(rows).to_have_count(50)
    first = rows.first
    expect(first).to_contain_text("key.create")
    expect(first).to_contain_text("local-admin")
    expect(first).to_contain_text("127.0.0.1")
    expect(first).to_contain_text("name=k54 scopes=read kind=key")
    shot(page, "audit")
    page.get_by_role("link", name="Older").click()
    expect(rows).to_have_count(5)  # k4..k0: sign-ins and projects are global changes
    expect(rows.last).to_contain_text("name=k0")
    shot(page, "audit-older")
    page.get_by_role("link", name="Back to the newest").click()
    expect(rows).to_have_count(50)
    page.get_by_label("Action starts with").fill("ui.")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("No change matches “ui.”.")).to_be_visible()
    page.get_by_label("Every project, and global changes").check()
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="Audit log · all projects")).to_be_visible()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ui.sign_in")
    expect(rows.first).to_contain_text("local-admin")
    page.get_by_label("Action starts with").fill("project.")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("project.create")
    expect(rows.first).to_contain_text("other")
    shot(page, "audit-filtered")


def test_only_admins_open_the_keys_and_audit_pages(
    app_url: str, admin: Client, admin_key: str
) -> None:
    reader = admin.create_key("reader", ["read", "write"], project="default").key
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        assert http.post("/signin", data={"key": reader, "next": "/"}).status_code == 303
        for path in ("/keys?project=default", "/audit?project=default", "/audit?all=true"):
            page = http.get(path)
            assert page.status_code == 403, (path, page.text)
            assert "That did not work" in page.text
            assert (
                "Key &#39;dashboard: reader&#39; has scopes [&#39;read&#39;, &#39;write&#39;]"
                in (page.text)
            )
            assert "this needs &#39;admin&#39;" in page.text
            assert "fnd_" not in page.text
        other = http.get("/keys?project=elsewhere")
        assert other.status_code == 404
        assert "Project &#39;elsewhere&#39; does not exist." in other.text
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        assert http.post("/signin", data={"key": admin_key, "next": "/"}).status_code == 303
        page = http.get("/keys?project=default")
        assert page.status_code == 200
        assert "reader" in page.text
        assert reader not in page.text  # keys are never shown again
        assert 'id="keys-data"' in page.text


def test_a_group_token_needs_an_expiry(app_url: str, admin_key: str) -> None:
    admin = {"authorization": f"Bearer {admin_key}"}
    body = {
        "name": "Group 1",
        "scopes": ["predict"],
        "project": "default",
        "deployment": "digits",
        "kind": "group",
    }
    refused = httpx.post(f"{app_url}/api/v1/keys", headers=admin, json=body)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "expires_at"
    assert error["message"].startswith("A group token needs a deployment and an expiry.")
    assert "--expires-in" in error["fix"]
    no_deployment = {**body, "deployment": None, "expires_at": utcnow().isoformat()}
    refused = httpx.post(f"{app_url}/api/v1/keys", headers=admin, json=no_deployment)
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "deployment"
    listed = httpx.get(f"{app_url}/api/v1/keys?kind=group", headers=admin).json()
    assert listed == []
