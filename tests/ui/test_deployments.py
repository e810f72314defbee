"""The deployments pages: the list, one deployment with its live rollout, traffic figures and
controls, and "Try it" — in a real browser against a control plane that runs a deployment
controller (real replicas) and a gateway, as `funade up` does."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.client import Client
from funade.deploy.backends.local import LocalBackend
from funade.deploy.controller import start_controller
from funade.gateway.app import Gateway
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from funade.store import Database
from tests.deploy.conftest import Plane, until
from tests.servers import serve, serve_front
from tests.serving.models import Arithmetic
from tests.ui.conftest import Page, expect

Shot = Callable[[Page, str], Path]

CANARY_STEPS = "10, 20, 30, 40, 50, 60, 70, 80, 90, 100"
"""Ten steps of a few seconds each: one step advances soon, and the whole canary takes long
enough for the test to abort it first."""
CANARY_PAUSE = "6"
"""Long enough that the abort, clicked once 20% shows, lands before 30% on a loaded machine."""


class Stage(Plane):
    """A control plane with a controller (as in tests/deploy) and a gateway in front of it."""

    def __init__(self, plane: Plane, gateway_url: str, admin_key: str) -> None:
        super().__init__(plane.url, plane.client, plane.controller, plane.home)
        self.gateway_url = gateway_url
        self.admin_key = admin_key

    def deploy(self, name: str = "calc", *, wait: bool = True) -> None:
        """``name`` at version 1 of an Arithmetic model, verified and taking traffic."""
        self.log(Arithmetic(), name)
        self.client.create_deployment(name)
        if wait:
            self.wait_rollout(name, ("succeeded",))


@pytest.fixture
def stage(settings: Settings, database: Database, admin_key: str) -> Iterator[Stage]:
    backend = LocalBackend(
        settings.home / "replicas",
        sandbox=Sandbox.from_settings(settings),
        fetch=ArtifactStore.from_settings(settings).open,
    )
    controller, stop = start_controller(database, backend, interval=0.1, grace_seconds=5)
    try:
        gateway = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
        with serve_front(gateway) as gateway_url:  # as `funade gateway` serves it
            # The try-it link names the gateway this test runs.
            app_settings = settings.model_copy(update={"gateway_url": gateway_url})
            artifacts = ArtifactStore.from_settings(settings)
            app = create_app(app_settings, database, artifacts, controller=True)
            with (
                serve(app) as url,
                Client(url=url, api_key=admin_key, settings=settings) as client,
            ):
                plane = Plane(url, client, controller, settings.home)
                yield Stage(plane, gateway_url, admin_key)
    finally:
        stop()
        for replica in backend.replicas():
            backend.stop(replica.id, grace_seconds=5)
        deadline = time.monotonic() + 20
        while list(backend.root.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        backend.close()


@pytest.fixture
def app_url(stage: Stage) -> str:
    """The dashboard of the stage's control plane (``signed_in`` and ``admin`` use it)."""
    return stage.url


@contextmanager
def signed_in_http(url: str, key: str) -> Iterator[httpx.Client]:
    """An HTTP client with a dashboard session made from ``key``."""
    with httpx.Client(base_url=url, headers={"origin": url}) as http:
        response = http.post("/signin", data={"key": key, "next": "/"})
        assert response.status_code == 303, response.text
        yield http


# In the browser -------------------------------------------------------------------------------


def test_start_a_canary_and_watch_it_progress_then_abort_it(
    signed_in: Page, stage: Stage, app_url: str, shot: Shot
) -> None:
    page = signed_in
    stage.deploy()
    stage.log(Arithmetic())  # calc:2, to roll out

    page.goto(f"{app_url}/deployments?project=default")
    expect(page.get_by_role("heading", name=re.compile("^Deployments"))).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="calc", exact=True))
    expect(row).to_contain_text("rev 1: 100%")
    expect(row).to_contain_text("direct to rev 1")
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("1 / 1")
    shot(page, "list")

    row.get_by_role("link", name="calc", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("^calc"))).to_be_visible()
    expect(page.locator("#r-state")).to_have_text("succeeded")
    shot(page, "deployment")

    page.get_by_label("Version", exact=True).select_option("2")
    page.get_by_label("Strategy", exact=True).select_option("canary")
    page.get_by_label("Canary steps (%)").fill(CANARY_STEPS)
    page.get_by_label("Pause at each step (s)").fill(CANARY_PAUSE)
    page.get_by_role("button", name="Start rollout").click()
    # The page is drawn again with the new revision (the one reload), then stays put.
    expect(page.locator("#r-revision")).to_have_text("rev 2 (stable: rev 1)")
    expect(page.locator("#revisions-body tr[data-revision='2']")).to_contain_text("calc:2")
    page.evaluate("window.sameDocument = true")
    shot(page, "canary-verifying")

    rev2 = page.locator("#revisions-body tr[data-revision='2'] .rev-traffic")
    rev1 = page.locator("#revisions-body tr[data-revision='1'] .rev-traffic")
    step = page.locator("#r-step")
    # Replicas start and are verified, then the canary takes its first step, live.
    expect(step).to_have_text("step 1 of 10 (10%)", timeout=60_000)
    expect(page.locator("#r-state")).to_have_text("progressing")
    expect(rev2).to_have_text("10%")
    expect(rev1).to_have_text("90%")
    expect(page.locator("#r-meter")).to_have_attribute("aria-valuenow", "10")
    expect(page.get_by_role("button", name="Promote")).to_be_visible()
    expect(page.get_by_role("button", name="Roll back")).to_be_hidden()
    expect(page.get_by_role("button", name="Set traffic")).to_be_disabled()
    expect(page.get_by_label("Rev 2 (%)")).to_be_visible()  # verified now: it may take traffic
    shot(page, "canary-step-1")

    # The pause ends and the next step comes, without a reload.
    expect(step).to_have_text("step 2 of 10 (20%)", timeout=20_000)
    expect(rev2).to_have_text("20%")
    expect(page.locator("#r-history")).to_contain_text("canary at 20%")
    shot(page, "canary-step-2")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Abort").click()
    expect(page.locator("#r-state")).to_have_text("aborted")
    expect(rev1).to_have_text("100%")
    expect(rev2).to_have_text("0%")
    expect(page.locator("#r-meter")).to_have_attribute("aria-valuenow", "0")
    expect(page.locator("#r-reason")).to_have_text(re.compile("^aborted by "))
    expect(page.get_by_role("button", name="Abort")).to_be_hidden()
    expect(page.get_by_role("button", name="Roll back")).to_be_visible()
    expect(page.locator("#rollouts-body tr").first).to_contain_text("aborted")
    expect(page.get_by_role("button", name="Set traffic")).to_be_enabled()
    expect(page.get_by_label("Rev 1 (%)")).to_have_value("100")
    assert page.evaluate("window.sameDocument") is True  # all of it live, no reload
    shot(page, "aborted")

    deployment = stage.client.get_deployment("calc")
    assert deployment.traffic == {1: 100}
    assert deployment.rollout is not None
    assert deployment.rollout.state == "aborted"
    assert deployment.rollout.step == 1


def test_live_figures_per_revision(signed_in: Page, stage: Stage, app_url: str, shot: Shot) -> None:
    page = signed_in
    stage.deploy()
    stage.log(Arithmetic())
    stage.client.update_deployment("calc", version="2", rollout={"strategy": "bluegreen"})
    stage.wait_rollout("calc", ("succeeded",))
    stage.client.set_traffic("calc", {1: 50, 2: 50})
    until(
        lambda: {r.revision for r in stage.client.get_deployment("calc").replicas} == {1, 2},
        30,
        "replicas of both revisions",
    )

    stop = threading.Event()
    sent: list[int] = []

    def send() -> None:
        body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
        headers = {"Authorization": f"Bearer {stage.admin_key}"}
        with httpx.Client(base_url=stage.gateway_url, headers=headers) as http:
            while not stop.is_set():
                sent.append(http.post("/v2/models/calc/infer", json=body).status_code)
                stop.wait(0.05)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        page.goto(f"{app_url}/deployments/calc?project=default")
        stats = page.locator("#stats-body")
        expect(stats.locator("tr[data-revision='1']")).to_be_visible(timeout=20_000)
        expect(stats.locator("tr[data-revision='2']")).to_be_visible(timeout=20_000)
        # The charts gather points, one per refresh, a line per revision.
        rps = page.locator("#chart-rps polyline")
        expect(rps).to_have_count(2)
        until(
            lambda: (
                min(
                    len(p.split())
                    for p in rps.evaluate_all("ls => ls.map(l => l.getAttribute('points'))")
                )
                >= 3
            ),
            30,
            "three points on each line",
        )
        # Axes: ticks with values, a title with the unit, time along the bottom.
        chart = page.locator("#chart-rps")
        expect(chart.locator(".y-title")).to_have_text("req/s")
        expect(page.locator("#chart-errors .y-title")).to_have_text("%")
        expect(page.locator("#chart-p99 .y-title")).to_have_text("ms")
        expect(chart.locator(".x-title")).to_have_text("seconds ago")
        minus = "\u2212"  # the minus sign, as the axis writes it
        expect(chart.locator(".x-tick")).to_contain_text(
            [f"{minus}{s}" for s in (90, 60, 30)] + ["now"]
        )
        ticks = [float(t) for t in chart.locator(".y-tick").all_text_contents()]
        assert len(ticks) == 3, ticks
        assert ticks[0] == 0, ticks
        assert ticks == sorted(ticks), ticks
        peak = chart.evaluate("s => Math.max(...s.funadeChart.series.flatMap(l => l.values))")
        assert 0 < peak <= ticks[-1] < 2.5 * peak + 1, (peak, ticks)
        # Drawn at its own size: the text is not stretched.
        assert chart.evaluate("s => s.viewBox.baseVal.width === Math.max(s.clientWidth, 160)")
        expect(chart.locator("polyline title").first).to_contain_text(
            re.compile(r"^rev 1: [\d.]+ req/s now$")
        )
        # Pointing at the chart shows the values there; leaving it hides them.
        tip = page.locator("#chart-rps + .chart-tip")
        expect(tip).to_be_hidden()
        width = chart.evaluate("s => s.clientWidth")
        chart.hover(position={"x": width - 12, "y": 60})  # the right end
        expect(tip).to_be_visible()
        expect(tip).to_have_text(re.compile(r"^now · rev 1: [\d.]+ req/s · rev 2: [\d.]+ req/s$"))
        expect(chart.locator(".cursor")).to_have_attribute("visibility", "visible")
        shot(page, "chart-value")
        chart.hover(position={"x": 60, "y": 60})  # two minutes ago: before the first point
        expect(tip).to_have_text(re.compile(r"^11\d s ago · rev 1: — · rev 2: —$"))
        page.mouse.move(5, 5)
        expect(tip).to_be_hidden()
        expect(page.locator("#chart-legend")).to_contain_text("rev 1")
        expect(page.locator("#chart-legend")).to_contain_text("rev 2")
        row = stats.locator("tr[data-revision='2']")
        expect(row.locator("td").nth(0)).not_to_have_text("0")
        expect(row.locator("td").nth(2)).to_have_text("0.00%")
        expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^≤ [\d.]+ ms$"))
        shot(page, "live-figures")
    finally:
        stop.set()
        sender.join(timeout=10)
    assert sent
    assert set(sent) == {200}


def test_try_it_makes_a_key_and_opens_the_gateway_page(
    signed_in: Page, stage: Stage, app_url: str, admin: Client, shot: Shot
) -> None:
    page = signed_in
    stage.deploy(wait=False)  # a key names a deployment, whether or not it serves yet
    # The gateway's page is another section's: answer for it here, so only the address counts.
    page.context.route(
        re.compile(r"/try/calc$"),
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body='<!doctype html><html lang="en"><title>Try calc</title><p>try it</p></html>',
        ),
    )
    page.goto(f"{app_url}/deployments/calc?project=default")
    before = datetime.now(UTC)
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Try it").click()
    tab = opened.value
    tab.wait_for_url(re.compile(r"/try/calc#key=fnd_"))
    assert tab.url.startswith(f"{stage.gateway_url}/try/calc#key=fnd_")
    key_text = tab.url.split("#key=", 1)[1]
    expect(page.locator("#try-it-link")).to_contain_text("expires in an hour")
    expect(page.get_by_role("link", name="Open the try-it page")).to_have_attribute("href", tab.url)
    shot(page, "try-it")
    shot(tab, "try-it-tab")

    [made] = [k for k in admin.list_keys() if k.name == "try-it"]
    assert key_text.startswith(f"fnd_{made.id}_")
    assert made.scopes == ["predict"]
    assert made.deployment == "calc"
    assert made.project == "default"
    assert made.expires_at is not None
    expires = made.expires_at if made.expires_at.tzinfo else made.expires_at.replace(tzinfo=UTC)
    assert before + timedelta(minutes=59) < expires < datetime.now(UTC) + timedelta(minutes=61)


# Without a browser ----------------------------------------------------------------------------


def test_an_unknown_deployment_is_a_404_page(stage: Stage, admin_key: str) -> None:
    with signed_in_http(stage.url, admin_key) as http:
        response = http.get("/deployments/nope?project=default")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "Deployment &#39;nope&#39; does not exist." in response.text
    assert "funade deployments list" in response.text


def test_a_read_key_sees_the_deployment_but_no_controls(
    stage: Stage, admin: Client, admin_key: str
) -> None:
    stage.deploy(wait=False)
    reader = admin.create_key("reader", ["read"], project="default")
    writer = admin.create_key("writer", ["write"], project="default")
    controls = (
        'id="abort"',
        'id="promote"',
        'id="rollback"',
        'id="rollout-form"',
        'id="traffic-form"',
    )

    with signed_in_http(stage.url, reader.key) as http:
        listed = http.get("/deployments?project=default")
        shown = http.get("/deployments/calc?project=default")
    assert listed.status_code == 200
    assert 'href="/deployments/calc?project=default"' in listed.text
    assert shown.status_code == 200
    assert "calc:1" in shown.text
    assert 'id="stats-body"' in shown.text  # the live figures are for readers too
    for control in (*controls, 'id="try-it"'):
        assert control not in shown.text

    with signed_in_http(stage.url, writer.key) as http:
        written = http.get("/deployments/calc?project=default").text
    for control in ('id="abort"', 'id="promote"', 'id="rollback"', 'id="rollout-form"'):
        assert control in written
    assert 'id="try-it"' not in written  # making keys is for admins

    with signed_in_http(stage.url, admin_key) as http:
        assert 'id="try-it"' in http.get("/deployments/calc?project=default").text


def test_another_projects_deployment_is_not_found(
    stage: Stage, admin: Client, admin_key: str
) -> None:
    stage.deploy(wait=False)
    admin.create_project("other")
    outsider = admin.create_key("outsider", ["read"], project="other")
    with signed_in_http(stage.url, outsider.key) as http:
        response = http.get("/deployments/calc?project=other")
        listed = http.get("/deployments?project=other")
    assert response.status_code == 404
    assert "Deployment &#39;calc&#39; does not exist." in response.text
    assert listed.status_code == 200
    assert "Nothing is deployed yet" in listed.text
