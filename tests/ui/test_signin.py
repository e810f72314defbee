"""Signing in and out of the dashboard, in a real browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx

from funade.auth.keys import parse_key
from funade.store import Database
from funade.ui import links
from tests.ui.conftest import Page, expect


def test_sign_in_with_a_key_then_out(
    page: Page, app_url: str, admin_key: str, shot: Callable[[Page, str], Path]
) -> None:
    page.goto(f"{app_url}/?project=default")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2F%3Fproject%3Ddefault"))
    expect(page.get_by_role("heading", name="Sign in to funade")).to_be_visible()
    shot(page, "signin")
    page.get_by_label("API key").fill("fnd_0000_nope")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").filter(has_text="malformed")).to_be_visible()
    shot(page, "signin-refused")
    page.get_by_label("API key").fill(admin_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/\?project=default$"))
    page.goto(f"{app_url}/")
    expect(page.get_by_role("heading", name=re.compile("^Overview"))).to_be_visible()
    shot(page, "overview")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to funade")).to_be_visible()
    page.goto(f"{app_url}/")
    expect(page).to_have_url(re.compile(r"/signin"))


def test_a_sign_in_link_works_once(
    page: Page, app_url: str, admin_key: str, database: Database
) -> None:
    link = links.create_link(database, parse_key(admin_key).key_id)
    page.goto(f"{app_url}/signin#link={link}")
    expect(page.get_by_role("heading", name=re.compile("^Overview"))).to_be_visible()
    assert "#" not in page.url  # the one-time link left the address bar
    fresh = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        again = fresh.new_page()
        again.goto(f"{app_url}/signin#link={link}")
        expect(again.get_by_role("alert").filter(has_text="already used")).to_be_visible()
    finally:
        fresh.close()


def test_a_change_needs_the_dashboard_header_with_the_cookie(app_url: str, admin_key: str) -> None:
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        signed = http.post("/signin", data={"key": admin_key, "next": "/"})
        assert signed.status_code == 303
        refused = http.post("/api/v1/projects", json={"name": "forged"})
        assert refused.status_code == 403
        assert refused.json()["error"]["field"] == "headers"
        assert "must come from the dashboard" in refused.json()["error"]["message"]
        made = http.post("/api/v1/projects", json={"name": "made"}, headers={"X-Funade-UI": "1"})
        assert made.status_code == 201
