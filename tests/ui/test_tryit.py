"""Group tokens end to end, as a class would use them: an admin makes a sheet of QR codes on
/keys; a tablet (no dashboard sign-in) opens a code's link at the gateway, takes a photo and sees
the prediction; the admin revokes the code and the tablet is told so in plain words; /keys
shows which group made predictions. Also the try-it form of a model that takes values."""

from __future__ import annotations

import io
import re
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zxingcpp
from PIL import Image, ImageDraw

import funade
from funade.gateway.app import Gateway
from funade.settings import Settings
from funade.store import Database
from funade.store.schema import utcnow
from tests.conftest import make_settings
from tests.deploy.conftest import Plane, plane  # noqa: F401 - the control plane with a controller
from tests.servers import serve_front
from tests.serving.models import Arithmetic
from tests.ui.conftest import TABLET, Page, expect
from tests.ui.tryit_models import Digits

Shot = Callable[[Page, str], Path]


@pytest.fixture
def gateway_socket() -> Iterator[socket.socket]:
    """The gateway's socket, bound first, so the control plane's settings know its address
    (the try-it links and QR codes point at it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, gateway_socket: socket.socket) -> Settings:
    port = gateway_socket.getsockname()[1]
    return make_settings(tmp_path / "home", sqlite_url, gateway_url=f"http://127.0.0.1:{port}")


@pytest.fixture
def gateway(
    plane: Plane,  # noqa: F811
    database: Database,
    gateway_socket: socket.socket,
) -> Iterator[Gateway]:
    app = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
    # Key checks are cached for KEY_TTL (5 s) in production; here every request asks the store,
    # so a revoked token is refused on its very next request.
    app.keys.ttl = 0.0
    with serve_front(app, sock=gateway_socket):
        yield app


@pytest.fixture
def digits(plane: Plane, gateway: Gateway) -> str:  # noqa: F811
    """``digits``: an image model (8x8 grayscale, ink bright), deployed and taking traffic."""
    sample = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    plane.log(
        Digits(),
        "digits",
        sample_input=sample,
        image=funade.ImageInput(invert=True),
        labels=["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    )
    plane.client.create_deployment("digits", description="Write a digit on paper, take a photo.")
    plane.wait_rollout("digits", ("succeeded",))
    return "digits"


def photo_of_a_one() -> bytes:
    """A photo-like PNG of a handwritten 1: a dark stroke on light grey paper."""
    image = Image.new("RGB", (240, 320), (235, 232, 225))
    draw = ImageDraw.Draw(image)
    draw.line([(105, 70), (125, 50), (125, 270)], fill=(30, 30, 40), width=34)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def tablet(page: Page) -> Page:
    """A new browser context at a tablet's viewport, without the dashboard's cookie."""
    assert page.context.browser is not None
    context = page.context.browser.new_context(viewport=TABLET, has_touch=True, is_mobile=True)
    context.set_default_timeout(10_000)
    return context.new_page()


def test_a_group_photographs_a_digit_then_its_code_is_switched_off(
    signed_in: Page, app_url: str, digits: str, gateway: Gateway, shot: Shot
) -> None:
    admin = signed_in
    admin.on("dialog", lambda dialog: dialog.accept())
    admin.goto(f"{app_url}/keys?project=default")
    expect(admin.get_by_role("heading", name="API keys")).to_be_visible()
    shot(admin, "keys")
    admin.get_by_label("Deployment", exact=True).select_option("digits")
    admin.get_by_label("Number of groups").fill("3")
    admin.get_by_label("The codes work for").select_option(label="8 hours")
    admin.get_by_role("button", name="Make the QR codes").click()
    sheet = admin.locator("#group-sheet")
    expect(sheet.get_by_role("heading", name="Try digits")).to_be_visible()
    cards = sheet.locator(".group-card")
    expect(cards).to_have_count(3)
    expect(cards.nth(0).get_by_role("heading")).to_have_text("Group 1")
    qr = cards.nth(0).get_by_role("img", name="QR code for Group 1")
    expect(qr).to_be_visible()
    expect(qr).to_have_js_property("complete", True)
    assert qr.evaluate("img => img.naturalWidth") > 0  # the SVG was drawn, not a broken image
    expect(cards.nth(0)).to_contain_text("Works until")
    # The codes name 127.0.0.1, which no phone reaches: the sheet says so, and what to set.
    warning = sheet.get_by_role("alert")
    expect(warning).to_contain_text("which only this machine reaches")
    expect(warning.locator("code").first).to_have_text("gateway_url")  # code, not backticks
    assert "`" not in warning.inner_text()
    # The new rows' expiry reads as the rows the page came with: "in 8 h", the date on hover.
    made = admin.locator("#groups-body tr", has_text="Group 1").locator("time")
    expect(made).to_have_text("in 8 h")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", made.get_attribute("title") or "")
    expect(admin.get_by_role("button", name="Print")).to_be_visible()
    shot(admin, "group-sheet")
    admin.emulate_media(media="print")
    shot(admin, "group-sheet-printed")
    printed = qr.screenshot()  # the code as the sheet prints it
    admin.emulate_media(media="screen")
    url = cards.nth(0).locator(".group-url").inner_text()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/try/digits#key=fnd_\w+_[\w-]+", url), url
    scanned = [code.text for code in zxingcpp.read_barcodes(Image.open(io.BytesIO(printed)))]
    assert scanned == [url]  # a scanner (zxing-cpp, what phone apps use) reads the printed code

    kid = tablet(admin)
    try:
        kid.goto(scanned[0])
        expect(kid.get_by_role("heading", name="Try digits")).to_be_visible()
        expect(kid.get_by_text("Model digits:1")).to_be_visible()
        expect(kid.get_by_text("Write a digit on paper, take a photo.")).to_be_visible()
        expect(kid.get_by_text("Take or choose a photo")).to_be_visible()
        expect(kid.get_by_role("status")).to_contain_text(
            "Frame one thing at a time, close up, on a plain background, in good light."
        )
        expect(kid.locator("#photo")).to_have_attribute("accept", "image/*")
        expect(kid.locator("#photo")).to_have_attribute("capture", "environment")
        expect(kid.get_by_text(re.compile("This link works until"))).to_be_visible()
        assert "#" not in kid.url  # the key left the address bar
        assert "fnd_" not in kid.url
        shot(kid, "try-photo-button")
        kid.set_input_files(
            "#photo",
            files=[{"name": "one.png", "mimeType": "image/png", "buffer": photo_of_a_one()}],
        )
        expect(kid.locator("#headline")).to_have_text("one")  # the class's name, not index 1
        expect(kid.locator("#headline-sub")).to_contain_text("% sure (10 classes)")
        expect(kid.locator("#ranking li").first).to_contain_text("one")
        expect(kid.get_by_role("img", name="The photo you sent")).to_be_visible()
        expect(kid.get_by_text(re.compile(r"Answered in \d+ ms by digits:1"))).to_be_visible()
        shot(kid, "try-prediction")

        admin.goto(f"{app_url}/keys?project=default")  # the sheet is gone; the tokens stay
        row = admin.locator("#groups-body tr", has_text="Group 1")
        expect(row.locator("time").nth(1)).to_have_text("in 8 h")  # created, expires, used
        expect(row.locator("[data-predictions]")).to_have_text("1", timeout=15_000)
        expect(
            admin.locator("#groups-body tr", has_text="Group 2").locator("[data-predictions]")
        ).to_have_text("0")
        row.get_by_role("button", name="Revoke Group 1").click()
        expect(row.locator("[data-state]")).to_have_text("revoked")
        shot(admin, "keys-group-revoked")

        kid.set_input_files(
            "#photo",
            files=[{"name": "one.png", "mimeType": "image/png", "buffer": photo_of_a_one()}],
        )
        expect(kid.get_by_role("heading", name="This link was switched off")).to_be_visible()
        expect(kid.get_by_text("Ask them for a new one")).to_be_visible()
        expect(kid.get_by_text("Take or choose another photo")).to_be_hidden()
        shot(kid, "try-revoked")
        kid.reload()  # the key is still in this tab (sessionStorage); the gateway refuses it
        expect(kid.get_by_role("heading", name="This link was switched off")).to_be_visible()
    finally:
        kid.context.close()

    admin.reload()
    expect(
        admin.locator("#groups-body tr", has_text="Group 1").locator("[data-predictions]")
    ).to_have_text("1")
    expect(admin.get_by_text(re.compile(r"1 prediction on digits"))).to_be_visible()
    shot(admin, "keys-predictions")


def test_a_model_that_takes_values_gets_a_form(
    page: Page,
    plane: Plane,  # noqa: F811
    gateway: Gateway,
    shot: Shot,
) -> None:
    plane.log(Arithmetic(), "calc")
    plane.client.create_deployment("calc")
    plane.wait_rollout("calc", ("succeeded",))
    token = plane.client.create_key(
        "Table A",
        ["predict"],
        project="default",
        deployment="calc",
        kind="group",
        expires_at=utcnow() + timedelta(hours=2),
    )
    assert token.try_url is not None
    kid = tablet(page)
    try:
        kid.goto(token.try_url)
        expect(kid.get_by_role("heading", name="Try calc")).to_be_visible()
        first, second = kid.get_by_label("x 1"), kid.get_by_label("x 2")
        expect(first).to_have_value("1")  # the version's golden example
        expect(second).to_have_value("2")
        shot(kid, "try-form")
        first.fill("5")
        second.fill("")
        kid.get_by_role("button", name="Predict").click()
        expect(kid.get_by_role("heading", name="Check the values")).to_be_visible()
        expect(kid.get_by_text("Fill in “x 2”.")).to_be_visible()
        second.fill("-1")  # the model raises on negative values: a 4xx/5xx in plain words
        kid.get_by_role("button", name="Predict").click()
        expect(kid.get_by_role("heading", name="The model could not answer that")).to_be_visible()
        expect(kid.get_by_text(re.compile("negative values are not allowed"))).to_be_visible()
        shot(kid, "try-form-refused")
        second.fill("2.5")
        kid.get_by_role("button", name="Predict").click()
        expect(kid.locator("#headline")).to_have_text("10, 5")
        expect(kid.locator("#headline-sub")).to_have_text("double")
        kid.get_by_text("Everything the model answered").click()
        expect(kid.get_by_role("cell", name="total")).to_be_visible()
        expect(kid.get_by_role("cell", name="7.5")).to_be_visible()
        expect(kid.locator("#problem")).to_be_hidden()
        shot(kid, "try-form-prediction")
    finally:
        kid.context.close()

    elsewhere = plane.client.create_key(
        "Other room",
        ["predict"],
        project="default",
        deployment="calc",
        kind="group",
        expires_at=utcnow() + timedelta(hours=2),
        allow_cidrs=["10.0.0.0/8"],
    )
    assert elsewhere.try_url is not None
    kid = tablet(page)
    try:
        kid.goto(elsewhere.try_url)
        expect(kid.get_by_role("heading", name="Not from this network")).to_be_visible()
        expect(
            kid.get_by_text(re.compile("works only on the network it was made for"))
        ).to_be_visible()
        expect(kid.get_by_role("button", name="Predict")).to_be_hidden()
        shot(kid, "try-wrong-network")
        kid.goto(elsewhere.try_url.split("#")[0].replace("/try/calc", "/try/nope"))
        expect(kid.get_by_role("heading", name="There is no such model here")).to_be_visible()
    finally:
        kid.context.close()
    kid = tablet(page)
    try:
        kid.goto(elsewhere.try_url.split("#")[0])  # the page without its key
        expect(kid.get_by_role("heading", name="This page needs its link")).to_be_visible()
        shot(kid, "try-no-key")
    finally:
        kid.context.close()


@pytest.fixture
def bare_gateway(database: Database, gateway_socket: socket.socket) -> Iterator[str]:
    """A gateway with nothing deployed: the page is static; tests answer its calls themselves."""
    with serve_front(Gateway(database, refresh_seconds=0.1), sock=gateway_socket) as url:
        yield url


CHURN = {
    "deployment": "churn",
    "project": "default",
    "revision": 3,
    "model": "churn",
    "version": 3,
    "model_version": "churn:3",
    "description": "",
    "input_format": "columns",
    "takes": "values",
    "predict_path": "/v2/models/churn/infer",
    "max_body_bytes": 16 << 20,
    "public": False,
    "key": {"name": "Table A", "kind": "group", "expires_at": None},
    "inputs": [
        {"name": "age", "datatype": "INT64", "shape": [-1], "image": None, "example": [41]},
        {"name": "plan", "datatype": "BYTES", "shape": [-1], "image": None, "example": ["gold"]},
        {"name": "active", "datatype": "BOOL", "shape": [-1, 1], "image": None, "example": [True]},
        {"name": "spend", "datatype": "FP32", "shape": [-1], "image": None, "example": None},
        {
            "name": "history",
            "datatype": "FP32",
            "shape": [-1, 2, 3],
            "image": None,
            "example": [0, 1, 2, 3, 4, 5],
        },
    ],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}],
}


def test_the_form_follows_the_signature_and_refusals_are_plain_words(
    page: Page, bare_gateway: str, shot: Shot
) -> None:
    """Named fields for a DataFrame's columns, typed by datatype, defaults from the version's
    example; the request is OIP v2 JSON; refusals in words (the gateway's answers faked here)."""
    page.set_viewport_size(TABLET)
    sent: list[tuple[dict[str, object], str | None]] = []
    answers = [
        (429, {"error": {"code": "rate_limited", "message": "Over the limit.", "fix": ""}}),
        (503, {"error": {"code": "unavailable", "message": "No ready replica.", "fix": ""}}),
        (
            200,
            {
                "outputs": [
                    {
                        "name": "probabilities",
                        "datatype": "FP32",
                        "shape": [1, 2],
                        "data": [0.2, 0.8],
                    }
                ]
            },
        ),
    ]

    def infer(route: Any) -> None:
        sent.append((route.request.post_data_json, route.request.headers.get("authorization")))
        status, body = answers.pop(0)
        route.fulfill(status=status, json=body)

    page.route("**/try/churn/info", lambda route: route.fulfill(json=CHURN))
    page.route("**/v2/models/churn/infer", infer)
    page.goto(f"{bare_gateway}/try/churn#key=fnd_000000000000_secret")
    expect(page.get_by_role("heading", name="Try churn")).to_be_visible()
    expect(page.get_by_label("age")).to_have_value("41")
    expect(page.get_by_label("plan")).to_have_value("gold")
    expect(page.get_by_label("active")).to_be_checked()
    expect(page.get_by_label("spend")).to_have_value("0")
    expect(page.get_by_label("history: one row as JSON")).to_have_value("[0,1,2,3,4,5]")
    assert page.evaluate("sessionStorage.getItem('funade-try:churn')") == "fnd_000000000000_secret"
    shot(page, "form")

    page.get_by_label("age").fill("41.5")
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_text("“age” must be a whole number.")).to_be_visible()
    assert sent == []
    page.get_by_label("age").fill("42")
    page.get_by_label("spend").fill("12.5")
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("heading", name="Too many tries at once")).to_be_visible()
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("heading", name="The model is not answering")).to_be_visible()
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#headline")).to_have_text("1")
    expect(page.locator("#headline-sub")).to_have_text("80% sure (class 1 of 2)")
    expect(page.locator("#problem")).to_be_hidden()
    shot(page, "prediction")
    body, authorization = sent[-1]
    assert authorization == "Bearer fnd_000000000000_secret"
    assert body == {
        "inputs": [
            {"name": "age", "datatype": "INT64", "shape": [1], "data": [42]},
            {"name": "plan", "datatype": "BYTES", "shape": [1], "data": ["gold"]},
            {"name": "active", "datatype": "BOOL", "shape": [1, 1], "data": [True]},
            {"name": "spend", "datatype": "FP32", "shape": [1], "data": [12.5]},
            {"name": "history", "datatype": "FP32", "shape": [1, 2, 3], "data": [0, 1, 2, 3, 4, 5]},
        ]
    }
