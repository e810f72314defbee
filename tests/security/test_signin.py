"""Signing in to the dashboard (issue 17, part 5).

The attacks: login CSRF (a cross-site form with ``Origin: null`` signed a victim in as the
attacker); the "one-time" sign-in link was a global admin API key, usable as a bearer token on
the whole API for 60 minutes; and two concurrent sign-ins with one link both succeeded on
PostgreSQL. Now a link is a secret of its own kind (``fndlink_``, table ``signin_links``) that
signs in once, by one conditional UPDATE; old ``link`` keys are revoked by migration 0007 and
refused by ``check_key``; and sign-in and sign-out refuse forms from any page but the
dashboard's own.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import MetaData, Table, func, select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.auth.keys import generate_key, hash_secret, parse_key
from funade.auth.service import check_key
from funade.bootstrap import bootstrap
from funade.client import Client
from funade.errors import AuthenticationError
from funade.store import Database, create_database, upgrade
from funade.store.schema import ApiKey, AuditEvent, SigninLink, utcnow
from funade.ui import links, session
from tests.conftest import make_settings
from tests.servers import serve

CHROMIUM = Path("/usr/bin/chromium")


def text_of(response: httpx.Response) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.text)))


@pytest.fixture
def attacker_key(admin: Client) -> str:
    """The attacker's own key: a write key of a project of theirs."""
    admin.create_project("mallory")
    return admin.create_key("mallory", ["write"], project="mallory").key


def _sessions(database: Database) -> int:
    with database.read() as s:
        return s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.kind == "session"))


# A sign-in link is not an API key ---------------------------------------------------------------


def test_a_sign_in_link_is_not_an_api_key(app_url: str, admin_key: str, database: Database) -> None:
    """Before: the link was an admin key of kind ``link``, a bearer token on the whole API."""
    link = links.create_link(database, parse_key(admin_key).key_id)
    assert link.startswith("fndlink_")
    with pytest.raises(AuthenticationError, match="malformed"):
        parse_key(link)
    for headers in ({"authorization": f"Bearer {link}"}, {"x-api-key": link}):
        for path in ("/api/v1/whoami", "/api/v1/keys", "/api/v1/projects/default/models"):
            response = httpx.get(app_url + path, headers=headers)
            assert response.status_code == 401, (path, response.text)
            error = response.json()["error"]
            assert error["code"] == "unauthenticated"
            assert error["message"].startswith("The API key is malformed.")
    with httpx.Client(base_url=app_url, cookies={"funade_session": link}) as http:
        page = http.get("/")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/signin?next=%2F&reason=")
        assert http.get("/api/v1/whoami").status_code == 401
    # Stored apart from the keys, as the secret's SHA-256 only.
    link_id, secret = link.split("_")[1], link.split("_", 2)[2]
    with database.read() as s:
        assert s.get(ApiKey, link_id) is None
        row = s.get(SigninLink, link_id)
        assert row is not None
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert row.used_at is None
        assert timedelta(minutes=59) < row.expires_at - row.created_at <= timedelta(minutes=60)
    # It still signs in, once.
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        assert http.post("/signin", data={"key": link}).status_code == 303
        assert http.get("/api/v1/whoami").json()["name"].startswith("dashboard: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fndlink_123", "The sign-in link is malformed."),
        ("fndlink_000000000000_nope", "The sign-in link is not valid."),
    ],
)
def test_a_link_that_is_not_one_is_refused_in_words(
    app_url: str, admin_key: str, text: str, message: str
) -> None:
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        response = http.post("/signin", data={"key": text})
        assert response.status_code == 401
        assert message in text_of(response)
        assert "funade up" in text_of(response)  # the fix: a new link, or the admin key
        assert "set-cookie" not in response.headers


def test_an_expired_link_and_one_for_a_revoked_key_are_refused(
    app_url: str, admin_key: str, database: Database, admin: Client
) -> None:
    expired = links.create_link(database, parse_key(admin_key).key_id)
    with database.session() as s:
        s.execute(
            update(SigninLink)
            .where(SigninLink.id == expired.split("_")[1])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    owner = admin.create_key("owner", ["admin"], project=None)
    orphan = links.create_link(database, owner.id)
    admin.revoke_key(owner.id)
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        late = http.post("/signin", data={"key": expired})
        assert late.status_code == 401
        assert "The sign-in link expired at " in text_of(late)
        revoked = http.post("/signin", data={"key": orphan})
        assert revoked.status_code == 401
        assert "The key this sign-in link signs in as was revoked." in text_of(revoked)
    with pytest.raises(AuthenticationError, match="does not exist"):
        links.create_link(database, owner.id)  # no new links for a revoked key
    assert _sessions(database) == 0


# Once, under concurrency, on SQLite and PostgreSQL -----------------------------------------------

ROUNDS = 12
RACERS = 6


@pytest.fixture
def raced_app(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Database, str]]:
    """A control plane over ``database_url`` (SQLite, then PostgreSQL): its URL, store and
    admin key."""
    settings = make_settings(tmp_path / "race-home", database_url)
    db = create_database(settings.resolved_database_url)
    upgrade(db)
    key = bootstrap(settings, db).admin_key
    with serve(create_app(settings, db, ArtifactStore.from_settings(settings))) as url:
        yield url, db, key
    db.dispose()


def _race(url: str, link: str) -> list[httpx.Response]:
    """``RACERS`` sign-ins with ``link`` from as many threads, let go at once."""
    start = threading.Barrier(RACERS)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def sign_in() -> None:
        with httpx.Client(base_url=url, headers={"origin": url}, timeout=60) as http:
            start.wait(timeout=30)
            answer = http.post("/signin", data={"key": link, "next": "/"})
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=sign_in) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_two_sign_ins_with_one_link_at_once_exactly_one_wins(
    raced_app: tuple[str, Database, str],
) -> None:
    """Before: each sign-in checked the link key, then revoked it; on PostgreSQL two sign-ins
    between those steps both got a session."""
    url, db, admin_key = raced_app
    for _ in range(ROUNDS):
        link = links.create_link(db, parse_key(admin_key).key_id)
        answers = _race(url, link)
        assert len(answers) == RACERS
        won = [a for a in answers if a.status_code == 303]
        lost = [a for a in answers if a.status_code != 303]
        assert len(won) == 1, [(a.status_code, text_of(a)[:200]) for a in answers]
        assert "funade_session=" in won[0].headers["set-cookie"]
        for answer in lost:
            assert answer.status_code == 401, text_of(answer)
            assert "This sign-in link was already used; a link works once." in text_of(answer)
            assert "set-cookie" not in answer.headers
    with db.read() as s:
        assert _sessions(db) == ROUNDS
        signed = s.scalars(select(AuditEvent).where(AuditEvent.action == "ui.sign_in")).all()
        assert len(signed) == ROUNDS
        assert all(e.details.get("link") for e in signed)
        unused = select(func.count()).select_from(SigninLink).where(SigninLink.used_at.is_(None))
        assert s.scalar(unused) == 0


# Links made by earlier versions -----------------------------------------------------------------


def test_link_keys_left_by_an_earlier_version_stop_working(database_url: str) -> None:
    """Migration 0007 revokes the ``link`` keys; ``check_key`` refuses the kind anyway (a row
    written by an old process still running beside the new one)."""
    db = create_database(database_url)
    upgrade(db, "0006")
    made: dict[str, str] = {}
    ids: dict[str, str] = {}
    # The rows as an earlier version wrote them, in the schema of then (not today's classes).
    keys = Table("api_keys", MetaData(), autoload_with=db.engine)
    projects = Table("projects", MetaData(), autoload_with=db.engine)
    with db.engine.begin() as connection:
        [project_id] = connection.execute(
            projects.insert().values(name="default", description="", created_at=utcnow())
        ).inserted_primary_key or [None]
        for name, kind, scopes, project in (
            ("admin", "key", ["admin"], None),
            ("user", "key", ["read"], project_id),
            ("old-link", "link", ["admin"], None),
            ("late-link", "link", ["admin"], None),
        ):
            text, parts = generate_key()
            connection.execute(
                keys.insert().values(
                    id=parts.key_id,
                    name=name,
                    scopes=scopes,
                    project_id=project,
                    secret_hash=hash_secret(parts.secret),
                    created_at=utcnow(),
                    created_by=ids.get("admin"),
                    expires_at=utcnow() + timedelta(minutes=60) if kind == "link" else None,
                    kind=kind,
                    parent_id=ids.get("admin") if kind == "link" else None,
                    predictions=0,
                )
            )
            made[name], ids[name] = text, parts.key_id
    upgrade(db)
    with db.session() as s:
        old = s.get(ApiKey, ids["old-link"])
        assert old is not None
        assert old.revoked_at is not None
        assert s.get(ApiKey, ids["admin"]).revoked_at is None  # type: ignore[union-attr]
        assert s.get(ApiKey, ids["user"]).revoked_at is None  # type: ignore[union-attr]
        late = s.get(ApiKey, ids["late-link"])
        assert late is not None
        late.revoked_at = None  # as if an old process wrote it after the upgrade
    with db.read() as s:
        for name in ("old-link", "late-link"):
            with pytest.raises(AuthenticationError) as caught:
                check_key(s, made[name], client_ip=None)
            assert "was a one-time sign-in link: links are not API keys" in caught.value.message
        principal, _ = check_key(s, made["admin"], client_ip=None)
        assert principal.name == "admin"
    with pytest.raises(AuthenticationError, match="one-time sign-in link"):
        session.sign_in(db, made["late-link"], client_ip=None)
    db.dispose()


# Login CSRF ------------------------------------------------------------------------------------


def _other_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{(parts.port or 80) + 1}"


REFUSED: dict[str, tuple[dict[str, str] | None, str]] = {
    # case: (headers, or None for ones made from the app's URL; what the refusal says)
    "origin null": ({"origin": "null"}, "(Origin: null: a sandboxed frame"),
    "another site": ({"origin": "http://evil.example"}, "sent from http://evil.example, not"),
    "another port": (None, "not from this dashboard"),
    "https for http": (None, "not from this dashboard"),
    "localhost for 127.0.0.1": (None, "not from this dashboard"),
    "a bad origin": ({"origin": "http://[::1"}, "not from this dashboard"),
    "no origin, no fetch metadata": ({}, "The form came without an Origin header"),
    "cross-site fetch": ({"sec-fetch-site": "cross-site"}, "(Sec-Fetch-Site: cross-site)"),
    "same-site fetch": ({"sec-fetch-site": "same-site"}, "(Sec-Fetch-Site: same-site)"),
    "own origin but cross-site fetch": (None, "from another site's page (Sec-Fetch-Site"),
}


def _refused_headers(case: str, app_url: str) -> dict[str, str]:
    headers = REFUSED[case][0]
    if headers is not None:
        return headers
    host, port = urlsplit(app_url).hostname, urlsplit(app_url).port
    return {
        "another port": {"origin": _other_port(app_url)},
        "https for http": {"origin": f"https://{host}:{port}"},
        "localhost for 127.0.0.1": {"origin": f"http://localhost:{port}"},
        "own origin but cross-site fetch": {"origin": app_url, "sec-fetch-site": "cross-site"},
    }[case]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_sign_in_form_from_another_page_is_refused(
    app_url: str, database: Database, attacker_key: str, case: str
) -> None:
    headers = _refused_headers(case, app_url)
    words = REFUSED[case][1]
    with httpx.Client(base_url=app_url) as victim:
        response = victim.post("/signin", data={"key": attacker_key, "next": "/"}, headers=headers)
        assert response.status_code == 403, (case, response.text)
        assert response.headers["content-type"].startswith("text/html")
        page = text_of(response)
        assert words in page, (case, page)
        assert "Open this dashboard's own sign-in page (/signin) and sign in there." in page
        assert "set-cookie" not in response.headers
        assert victim.get("/").status_code == 303  # still signed out
    assert _sessions(database) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "{app}"},
        {"origin": "{app}", "sec-fetch-site": "same-origin"},
        {"origin": "{APP}"},  # scheme and host compare without case
        {"sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "none"},
    ],
    ids=["origin", "origin+fetch", "origin in capitals", "fetch same-origin", "fetch none"],
)
def test_a_sign_in_form_from_the_dashboard_itself_signs_in(
    app_url: str, attacker_key: str, headers: dict[str, str]
) -> None:
    sent = {
        k: v.replace("{app}", app_url).replace("{APP}", app_url.upper()) for k, v in headers.items()
    }
    with httpx.Client(base_url=app_url) as http:
        response = http.post("/signin", data={"key": attacker_key, "next": "/models"}, headers=sent)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/models"
        assert http.get("/api/v1/whoami").json()["project"] == "mallory"


def test_a_link_sent_from_another_page_is_not_used_up(
    app_url: str, admin_key: str, database: Database
) -> None:
    """The origin is checked before the link is touched: a refused form spends nothing."""
    link = links.create_link(database, parse_key(admin_key).key_id)
    with httpx.Client(base_url=app_url) as http:
        refused = http.post("/signin", data={"key": link}, headers={"origin": "null"})
        assert refused.status_code == 403
        signed = http.post("/signin", data={"key": link}, headers={"origin": app_url})
        assert signed.status_code == 303


def test_sign_out_from_another_page_is_refused(app_url: str, attacker_key: str) -> None:
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        assert http.post("/signin", data={"key": attacker_key}).status_code == 303
        for headers in ({"origin": "null"}, {"origin": "http://evil.example"}, {"origin": ""}):
            refused = http.post("/signout", headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert "not from this dashboard" in text_of(refused) or "Origin" in text_of(refused)
            assert http.get("/api/v1/whoami").status_code == 200  # still signed in
        cookie = {"funade_session": http.cookies["funade_session"]}
        with httpx.Client(base_url=app_url, cookies=cookie) as bare:
            no_origin = bare.post("/signout")
            assert no_origin.status_code == 403
            assert "The form came without an Origin header" in text_of(no_origin)
        out = http.post("/signout")
        assert out.status_code == 303
        assert http.get("/api/v1/whoami").status_code == 401


# In a real browser ------------------------------------------------------------------------------


def _attacker_site(target: str, key: str) -> Starlette:
    """Another site's pages, each posting the attacker's key to the dashboard's sign-in."""
    form = (
        f'<form method="post" action="{target}/signin"{{target}}>'
        f'<input name="key" value="{key}"><input name="next" value="/"></form>'
        "<script>document.forms[0].submit()</script>"
    )

    async def top(_request: Request) -> HTMLResponse:
        return HTMLResponse(f"<!doctype html><title>win a prize</title>{form.format(target='')}")

    async def sandboxed(_request: Request) -> HTMLResponse:
        # A sandboxed frame has an opaque origin: its form is sent with `Origin: null`.
        inner = html.escape(form.format(target=' target="_top"'), quote=True)
        return HTMLResponse(
            "<!doctype html><title>win a prize</title><iframe "
            f'sandbox="allow-forms allow-scripts allow-top-navigation" srcdoc="{inner}"></iframe>'
        )

    return Starlette(routes=[Route("/", top), Route("/sandboxed", sandboxed)])


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield browser
        browser.close()


@pytest.mark.parametrize(
    ("page_path", "origin", "fetch_site"),
    [("/", "http://localhost:{port}", "cross-site"), ("/sandboxed", "null", "cross-site")],
    ids=["cross-site form", "sandboxed frame (Origin: null)"],
)
def test_login_csrf_from_another_site_in_a_browser(
    browser: object,
    app_url: str,
    attacker_key: str,
    admin_key: str,
    page_path: str,
    origin: str,
    fetch_site: str,
) -> None:
    """Chromium opens the attacker's page (at ``localhost``, another site than the dashboard at
    127.0.0.1), which posts the attacker's key to the dashboard's sign-in: refused, and the
    browser holds no session. Signing in on the dashboard's own page still works."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    with serve(_attacker_site(app_url, attacker_key)) as evil:
        port = urlsplit(evil).port
        context = browser.new_context()
        try:
            page = context.new_page()
            with page.expect_response(
                lambda r: r.url == f"{app_url}/signin" and r.request.method == "POST"
            ) as caught:
                page.goto(f"http://localhost:{port}{page_path}")
            response = caught.value
            sent = response.request.all_headers()
            assert sent.get("origin") == origin.format(port=port), sent
            assert sent.get("sec-fetch-site") == fetch_site, sent
            assert response.status == 403
            assert "not from this dashboard" in response.text()
            assert not [c for c in context.cookies() if c["name"] == "funade_session"]
            page.goto(f"{app_url}/")
            assert urlsplit(page.url).path == "/signin"
            # The dashboard's own form, in the same browser: its Origin is the dashboard's.
            page.get_by_label("API key").fill(admin_key)
            with page.expect_response(lambda r: r.url == f"{app_url}/signin") as own:
                page.get_by_role("button", name="Sign in").click()
            headers = own.value.request.all_headers()
            assert headers.get("origin") == app_url, headers
            assert headers.get("sec-fetch-site") == "same-origin", headers
            assert own.value.status == 303
            page.wait_for_url(f"{app_url}/")
            assert [c for c in context.cookies() if c["name"] == "funade_session"]
        finally:
            context.close()


def test_a_key_in_the_fragment_is_not_signed_in_with(
    browser: object, app_url: str, attacker_key: str, admin_key: str, database: Database
) -> None:
    """Another site may link to ``/signin#link=<its own key>``: the page submits only sign-in
    links by itself, so the visitor is not signed in as the attacker."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context()
    try:
        page = context.new_page()
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        for fragment in (f"link={attacker_key}", f"key={attacker_key}"):
            page.goto("about:blank")  # a new document each time, not a fragment change
            page.goto(f"{app_url}/signin#{fragment}")
            page.get_by_label("API key").wait_for()
            assert "#" not in page.url or fragment.startswith("key=")
            assert page.get_by_label("API key").input_value() == ""
        assert posts == []
        assert not [c for c in context.cookies() if c["name"] == "funade_session"]
        link = links.create_link(database, parse_key(admin_key).key_id)
        page.goto("about:blank")
        page.goto(f"{app_url}/signin#link={link}")
        page.wait_for_url(f"{app_url}/")
        assert posts == [f"{app_url}/signin"]
        assert "#" not in page.url
    finally:
        context.close()
    assert _sessions(database) == 1
