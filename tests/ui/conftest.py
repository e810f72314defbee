"""Browser tests: Playwright driving Debian's Chromium against a real control plane on a free
port. Every page a test visits is saved as a screenshot under ``test-artifacts/screenshots/``
(``shot``), which CI keeps (``docs/ui.md`` shows some of them), and audited with axe-core for
WCAG 2 A/AA violations (``audit``)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from funade.client import Client
from funade.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TABLET = {"width": 820, "height": 1180}
"""An iPad Air's viewport, in CSS pixels."""

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing in CI (.ci/run installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

__all__ = ["TABLET", "Page", "expect"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module-scoped: Playwright's sync API keeps an event loop running on this thread while it is
    # open, and with pytest-xdist other modules' tests (which call asyncio.run) follow on the
    # same worker; closing it at the end of each module leaves them a thread without a loop.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """``shot(page, "name")`` saves the page as ``<test>--<name>.png`` and audits it
    (``audit``); returns the path."""
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def take(page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{test}--{name}.png"
        page.screenshot(path=str(path), full_page=True)
        audit(page, f"{test}--{name}")
        return path

    return take


WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def audit(page: Page, where: str) -> None:
    """Fail if axe-core (the accessibility engine, bundled by ``axe-playwright-python``) finds
    a WCAG 2.x A or AA violation on the page as it is now: missing names and labels, contrast,
    roles, landmarks, a control hidden inside another."""
    results = Axe().run(
        page, options={"runOnly": {"type": "tag", "values": WCAG}, "resultTypes": ["violations"]}
    )
    found = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]
    assert not found, f"accessibility violations on {where}:\n" + "\n".join(found)


@pytest.fixture
def signed_in(page: Page, app_url: str, admin_key: str) -> Page:
    """A page signed in to the dashboard with the admin key (through the sign-in form)."""
    page.goto(f"{app_url}/signin")
    page.get_by_label("API key").fill(admin_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Overview"))).to_be_visible()
    return page


@pytest.fixture
def ui_admin(admin: Client) -> Client:
    """The same admin as a client, to set up what a page should show."""
    return admin


@pytest.fixture
def ui_settings(settings: Settings) -> Settings:
    return settings


GRAPH_TEXT_OVERFLOWS = """
(svg) => {
  const out = [];
  for (const node of svg.querySelectorAll("[data-node]")) {
    const box = node.querySelector("rect").getBBox();
    for (const text of node.querySelectorAll("text")) {
      const t = text.getBBox();
      if (t.x < box.x + 2 || t.x + t.width > box.x + box.width - 2 || t.y < box.y
          || t.y + t.height > box.y + box.height) {
        out.push(`${node.dataset.node}: "${text.textContent}" (${t.width.toFixed(0)} px wide) `
          + `does not fit its box (${box.width} by ${box.height})`);
      }
    }
  }
  return out;
}
"""


def graph_text_overflows(page: Page) -> list[str]:
    """Each graph box's text that runs past its box, as the browser laid it out (empty: all
    text fits)."""
    found: list[str] = []
    for svg in page.locator(".graph svg").all():
        found += svg.evaluate(GRAPH_TEXT_OVERFLOWS)
    return found


def scrolls_sideways(page: Page) -> bool:
    """Whether the page itself is wider than the window (something overflows its box)."""
    return bool(
        page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")
    )
