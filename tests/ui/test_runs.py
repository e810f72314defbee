"""The runs and schedules sections: a real pipeline run (the runner's step processes against the
test control plane) opened from /runs, its graph, its steps' logs; a run followed live; a
schedule paused and resumed by its buttons; and without a browser, the errors, the filters and
what a read key's session does not see."""

from __future__ import annotations

import re
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from funade.api.schemas import RunEventsIn, RunIn, RunOut, RunUpdate, ScheduleIn, StepRecord
from funade.client import Client
from funade.pipelines.runs import run_pipeline
from funade.store import Database
from funade.store.schema import PipelineSchedule
from funade.ui.pages import runs as run_pages
from tests.ui.conftest import Page, expect, graph_text_overflows, scrolls_sideways

Shot = Callable[[Page, str], Path]

KNOWN_LINE = "total of the squares is 14 (the known line)"

FLOW = """\
from __future__ import annotations

import time
from pathlib import Path

import funade


@funade.step
def numbers(n: int) -> list[int]:
    print("making", n, "numbers")
    return list(range(1, n + 1))


@funade.step
def square(x: int) -> int:
    return x * x


@funade.step(cache=False)
def total(xs: list[int]) -> int:
    print(f"total of the squares is {sum(xs)} (the known line)")
    return sum(xs)


@funade.pipeline
def flow(n: int = 3) -> None:
    total(square.map(x=numbers(n)))


@funade.step
def gate(path: str) -> list[str]:
    print("waiting at the gate", flush=True)
    deadline = time.monotonic() + 60
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.05)
    print("through the gate")
    return ["a", "b"]


@funade.step
def shout(word: str) -> str:
    return word.upper()


@funade.pipeline
def gated(path: str = "") -> None:
    shout.map(word=gate(path))
"""


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "code" / "flows.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(FLOW))
    return path


@contextmanager
def _session(app_url: str, key: str) -> Iterator[httpx.Client]:
    """An httpx client signed in to the dashboard with ``key`` (its session cookie)."""
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        signed = http.post("/signin", data={"key": key, "next": "/"})
        assert signed.status_code == 303, signed.text
        yield http


def _new_run(client: Client, pipeline: str = "p", **fields: Any) -> RunOut:
    spec = {
        "name": pipeline,
        "nodes": [
            {"id": "a", "function": "m:a", "outputs": {"output": "int"}},
            {
                "id": "b",
                "function": "m:b",
                "inputs": {"x": {"kind": "output", "node": "a", "output": "output"}},
            },
        ],
    }
    return client.create_run(RunIn(pipeline=pipeline, spec=spec, **fields))


# In a browser -----------------------------------------------------------------------------------


def test_open_a_runs_graph_and_its_logs(
    signed_in: Page, app_url: str, admin: Client, flow_file: Path, shot: Shot
) -> None:
    first = run_pipeline(f"{flow_file}:flow", client=admin)
    assert first.state == "succeeded", first.reason
    second = run_pipeline(f"{flow_file}:flow", client=admin)  # numbers and squares: cached
    assert second.state == "succeeded", second.reason
    page = signed_in

    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("^Runs"))).to_be_visible()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(f"#{second.id}")
    expect(rows.first).to_contain_text("succeeded")
    shot(page, "runs")

    page.get_by_role("link", name=f"#{second.id}", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile(f"^Run #{second.id}"))).to_be_visible()
    graph = page.locator(".graph svg")
    expect(graph).to_be_visible()
    nodes = graph.locator("[data-node]")
    expect(nodes).to_have_count(5)  # numbers, square[0..2], total
    for instance in ("numbers", "square[0]", "square[1]", "square[2]"):
        node = graph.locator(f'[data-node="{instance}"]')
        expect(node).to_have_class(re.compile(r"\bstate-cached\b.*\bcached\b"))
        expect(node).to_contain_text("cached")
    total = graph.locator('[data-node="total"]')
    expect(total).to_have_class(re.compile(r"\bstate-succeeded\b"))
    expect(total).not_to_have_class(re.compile(r"\bcached\b"))
    expect(total).to_contain_text(re.compile(r"succeeded · \d"))
    assert graph.locator("path.edge").count() == 6  # numbers → 3 squares → total
    assert graph_text_overflows(page) == []
    expect(page.locator(".graph-hint")).to_be_hidden()  # it fits: nothing to scroll
    assert page.locator(".graph").evaluate("el => el.scrollWidth <= el.clientWidth")
    steps = page.locator("#steps tbody tr[data-step]")
    expect(steps).to_have_count(5)
    expect(page.locator('[id="step-square[1]"]')).to_contain_text("cached")
    shot(page, "run-graph")

    total.click()  # a node goes to its step's row and opens its log
    expect(page).to_have_url(re.compile(r"#step-total$"))
    log = page.locator('[id="log-total"]')
    expect(log).to_contain_text(KNOWN_LINE)
    expect(page.get_by_role("button", name="Hide the log of total")).to_be_visible()
    shot(page, "run-log")
    page.get_by_role("button", name="Hide the log of total").click()
    expect(log).to_be_hidden()

    # The first run: every step ran, so every step has a log (opened by its button).
    page.goto(f"{app_url}/runs/{first.id}?project=default")
    expect(page.locator('.graph [data-node="numbers"]')).to_have_class(
        re.compile(r"\bstate-succeeded\b")
    )
    page.get_by_role("button", name="Show the log of numbers").click()
    expect(page.locator('[id="log-numbers"]')).to_contain_text("making 3 numbers")
    assert page.get_by_role("button", name="Cancel run").count() == 0, "finished: no cancel"
    expect(page.get_by_role("button", name="Resume run")).to_be_hidden()
    shot(page, "first-run-log")


def test_a_wide_run_graph_fits_or_says_it_scrolls(
    signed_in: Page, app_url: str, admin: Client, shot: Shot
) -> None:
    """A long chain of steps: shrunk to fit while its text stays readable, past that a box that
    scrolls sideways with a hint under it, shaded on the side with more, reachable by keyboard;
    the page itself never scrolls sideways, and no label is cut."""
    names = [
        f"step_{i}_{word}" for i, word in enumerate(["prepare", "clean", "split", "featurise"])
    ]
    long = _chain_run(admin, names + [f"{n}_again" for n in names])
    short = _chain_run(admin, names[:3])
    page = signed_in

    page.goto(f"{app_url}/runs/{short.id}?project=default")
    expect(page.locator(".graph svg [data-node]")).to_have_count(3)
    expect(page.locator(".graph-hint")).to_be_hidden()
    assert page.locator(".graph").get_attribute("tabindex") is None

    page.goto(f"{app_url}/runs/{long.id}?project=default")
    box = page.locator(".graph")
    expect(box.locator("[data-node]")).to_have_count(8)
    expect(page.locator(".graph-hint")).to_be_visible()
    expect(page.locator(".graph-hint")).to_contain_text("scroll it sideways")
    expect(box).to_have_class(re.compile(r"\bmore-right\b"))
    expect(box).not_to_have_class(re.compile(r"\bmore-left\b"))
    expect(box).to_have_css("overflow-x", "auto")
    assert box.evaluate("el => el.scrollWidth > el.clientWidth")
    assert not scrolls_sideways(page), "the graph's box scrolls, not the page"
    assert graph_text_overflows(page) == []
    last = box.locator('[data-node="step_3_featurise_again"]')
    expect(last.locator("text").first).to_have_text("step_3_featurise_again")
    shot(page, "wide-graph")

    box.focus()  # the arrow keys scroll it
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(box).to_have_class(re.compile(r"\bmore-left\b"))
    box.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    expect(box).not_to_have_class(re.compile(r"\bmore-right\b"))
    expect(last).to_be_in_viewport()


def _chain_run(client: Client, names: list[str]) -> RunOut:
    """A run of steps one after another (recorded only: no runner runs it)."""
    nodes: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        node: dict[str, Any] = {"id": name, "function": f"m:{name}", "outputs": {"output": "int"}}
        if index:
            node["inputs"] = {"x": {"kind": "output", "node": names[index - 1], "output": "output"}}
        nodes.append(node)
    return client.create_run(RunIn(pipeline="chain", spec={"name": "chain", "nodes": nodes}))


class Background:
    """A pipeline run in a thread (the runner and its step processes), recorded at once."""

    def __init__(self, client: Client, target: str, params: dict[str, Any]) -> None:
        self.made: list[RunOut] = []
        self.done: list[RunOut] = []
        created = threading.Event()

        def on_created(run: RunOut) -> None:
            self.made.append(run)
            created.set()

        def go() -> None:
            self.done.append(
                run_pipeline(target, params=params, client=client, on_created=on_created)
            )

        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()
        assert created.wait(30), "the run was not recorded"
        self.id = self.made[0].id

    def finish(self) -> RunOut:
        self.thread.join(30)
        assert self.done, "the run did not finish"
        return self.done[0]


def test_cancel_a_running_run_then_resume_is_refused_here(
    signed_in: Page, app_url: str, admin: Client, flow_file: Path, tmp_path: Path, shot: Shot
) -> None:
    opened = tmp_path / "gate-open"  # never opened: the gate waits until it is cancelled
    run = Background(admin, f"{flow_file}:gated", {"path": str(opened)})
    try:
        page = signed_in
        page.goto(f"{app_url}/runs/{run.id}?project=default")
        gate = page.locator('.graph [data-node="gate"]')
        expect(gate).to_have_class(re.compile(r"\bstate-running\b"))
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Cancel run").click()
        expect(page.get_by_role("alert").filter(has_text="Cancel requested")).to_be_visible()
        expect(page.locator("#run-state")).to_contain_text("cancelled", timeout=20_000)
        expect(gate).to_have_class(re.compile(r"\bstate-cancelled\b"))
        expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
        resume = page.get_by_role("button", name="Resume run")
        expect(resume).to_be_visible()
        shot(page, "cancelled")
        resume.click()  # this test's control plane was not started by `funade up`
        refused = page.get_by_role("alert").filter(has_text="starts no runners")
        expect(refused).to_be_visible()
        assert refused.inner_text().count("Run the pipeline where its code is") == 1
        shot(page, "resume-refused")
    finally:
        opened.touch()
        finished = run.finish()
    assert finished.state == "cancelled", finished.reason


def test_a_running_run_updates_in_place(
    signed_in: Page, app_url: str, admin: Client, flow_file: Path, tmp_path: Path, shot: Shot
) -> None:
    opened = tmp_path / "gate-open"
    run = Background(admin, f"{flow_file}:gated", {"path": str(opened)})
    try:
        page = signed_in
        page.goto(f"{app_url}/runs/{run.id}?project=default")
        gate = page.locator('.graph [data-node="gate"]')
        expect(gate).to_have_class(re.compile(r"\bstate-running\b"))
        expect(page.locator('.graph [data-node="shout"]')).to_contain_text("pending")
        expect(page.locator('[id="step-shout"]')).to_contain_text("(fan-out)")
        expect(page.locator("#run-state")).to_contain_text("running")
        expect(page.get_by_role("button", name="Cancel run")).to_be_visible()
        expect(page.locator("#live-note")).to_be_visible()
        # A running step's log is its output so far, and follows it.
        page.get_by_role("button", name="Show the log of gate").click()
        expect(page.locator('[id="log-gate"]')).to_have_text("waiting at the gate\n")
        shot(page, "running")
        page.evaluate("window.__notReloaded = true")
        opened.touch()
        expect(page.locator("#run-state")).to_contain_text("succeeded", timeout=20_000)
        expect(gate).to_have_class(re.compile(r"\bstate-succeeded\b"))
        # The fan-out's instances arrive: rows for them, the pending row gone, the node summed.
        fanned = page.locator('.graph [data-node="shout"]')
        expect(fanned).to_have_class(re.compile(r"\bstate-succeeded\b"))
        expect(fanned).to_contain_text("2 of 2 done")
        expect(fanned).to_have_attribute("href", "#step-shout[0]")
        expect(gate).to_contain_text(re.compile(r"succeeded · [\d.]+ s"))
        assert graph_text_overflows(page) == [], "the live text fits the boxes drawn before it"
        for instance in ("shout[0]", "shout[1]"):
            cell = page.locator(f'[id="step-{instance}"] [data-f="state"]')
            expect(cell).to_have_text("succeeded")
        expect(page.locator('[id="step-shout"]')).to_be_hidden()
        expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
        expect(page.locator("#live-note")).to_be_hidden()
        assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        # The open log became the step's whole log when it ended.
        expect(page.locator('[id="log-gate"]')).to_contain_text("through the gate")
        shot(page, "finished-live")
    finally:
        opened.touch()
        finished = run.finish()
    assert finished.state == "succeeded", finished.reason


def test_pause_and_resume_a_schedule_by_its_buttons(
    signed_in: Page, app_url: str, admin: Client, flow_file: Path, database: Database, shot: Shot
) -> None:
    admin.create_schedule(
        ScheduleIn(
            name="nightly", source=f"{flow_file}:flow", cron="0 3 * * *", timezone="Asia/Tokyo"
        )
    )
    admin.create_schedule(ScheduleIn(name="hourly", source="pkg.flows:score", cron="0 * * * *"))
    with database.read() as session:
        hourly = session.scalar(
            select(PipelineSchedule.id).where(PipelineSchedule.name == "hourly")
        )
    ticked = _new_run(admin, "score", trigger="schedule", schedule_id=hourly)
    assert ticked.token is not None
    with admin.with_key(ticked.token) as runner:
        runner.report_run(ticked.id, RunEventsIn(steps=[], run=RunUpdate(state="succeeded")))
    page = signed_in
    page.get_by_role("link", name="Schedules", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("^Schedules"))).to_be_visible()
    row = page.locator('[id="schedule-nightly"]')
    expect(row).to_contain_text("flow")
    expect(row).to_contain_text("0 3 * * *")
    expect(row).to_contain_text("Asia/Tokyo")
    expect(row).to_contain_text("03:00 JST")
    expect(row).to_contain_text("none yet")
    expect(row.locator(".badge")).to_have_text("active")
    other = page.locator('[id="schedule-hourly"]')
    expect(other).to_contain_text("score")
    expect(other.get_by_role("link", name=f"#{ticked.id}")).to_be_visible()
    expect(other).to_contain_text("succeeded")
    shot(page, "schedules")

    page.get_by_role("button", name="Pause schedule nightly").click()
    expect(row.locator(".badge")).to_have_text("paused")
    expect(row).to_contain_text("none while paused")
    assert admin.get_schedule("nightly").paused is True
    shot(page, "paused")

    page.get_by_role("button", name="Resume schedule nightly").click()
    expect(row.locator(".badge")).to_have_text("active")
    assert admin.get_schedule("nightly").paused is False
    shot(page, "resumed")

    other.get_by_role("link", name="all its runs").click()  # the schedule's runs, filtered
    expect(page.get_by_text("Runs started by schedule hourly.")).to_be_visible()
    expect(page.locator("table tbody tr")).to_have_count(1)
    expect(page.locator("table tbody tr")).to_contain_text("schedule")
    shot(page, "schedule-runs")


# Without a browser ------------------------------------------------------------------------------


def test_a_run_that_does_not_exist_is_a_page_that_says_so(app_url: str, admin_key: str) -> None:
    with _session(app_url, admin_key) as http:
        response = http.get("/runs/4242")
        assert response.status_code == 404
        assert "Run 4242 does not exist." in response.text
        assert "funade runs list" in response.text
        bad_state = http.get("/runs", params={"state": "sleepy"})
        assert bad_state.status_code == 422
        assert "state &#39;sleepy&#39; is not a known state." in bad_state.text


def test_a_read_keys_session_sees_no_controls(
    app_url: str, admin: Client, admin_key: str, flow_file: Path
) -> None:
    running = _new_run(admin)
    failed = _new_run(admin)
    assert failed.token is not None
    with admin.with_key(failed.token) as runner:
        runner.report_run(failed.id, RunEventsIn(steps=[], run=RunUpdate(state="failed")))
    admin.create_schedule(ScheduleIn(name="nightly", source=f"{flow_file}:flow", cron="0 3 * * *"))
    reader = admin.create_key("reader", ["read"], project="default").key
    with _session(app_url, reader) as http:
        page = http.get(f"/runs/{running.id}")
        assert page.status_code == 200
        assert f"Run #{running.id}" in page.text
        assert "running" in page.text
        assert "/cancel" not in page.text
        assert "Cancel run" not in page.text
        page = http.get(f"/runs/{failed.id}")
        assert "/resume" not in page.text
        assert "Resume run" not in page.text
        schedules = http.get("/schedules")
        assert schedules.status_code == 200
        assert "nightly" in schedules.text
        assert 'data-method="PATCH"' not in schedules.text
        assert "Pausing and resuming need a key with the write and deploy-code" in schedules.text
    with _session(app_url, admin_key) as http:  # the same pages with the controls
        assert 'id="cancel-run"' in http.get(f"/runs/{running.id}").text
        resumable = http.get(f"/runs/{failed.id}").text
        assert 'id="resume-run"' in resumable
        assert 'id="cancel-run"' not in resumable
        assert 'aria-label="Pause schedule nightly"' in http.get("/schedules").text


def test_the_runs_list_filters_and_pages(
    app_url: str, admin: Client, admin_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_pages, "PAGE", 2)
    made = [_new_run(admin, name) for name in ("train", "score", "train", "train")]
    ids = [run.id for run in made]
    assert made[2].token is not None
    with admin.with_key(made[2].token) as runner:
        runner.report_run(ids[2], RunEventsIn(steps=[], run=RunUpdate(state="failed")))
    with _session(app_url, admin_key) as http:
        first = http.get("/runs")
        assert first.status_code == 200
        shown = re.findall(r'href="/runs/(\d+)\?project=default"', first.text)
        assert shown == [str(ids[3]), str(ids[2])]
        older = re.search(r'href="([^"]*cursor=[^"]*)" rel="next"', first.text)
        assert older is not None
        second = http.get(older.group(1).replace("&amp;", "&"))
        shown = re.findall(r'href="/runs/(\d+)\?project=default"', second.text)
        assert shown == [str(ids[1]), str(ids[0])]
        assert 'rel="next"' not in second.text
        failed = http.get("/runs", params={"pipeline": "train", "state": "failed"})
        assert re.findall(r'href="/runs/(\d+)\?project=default"', failed.text) == [str(ids[2])]
        assert '<option value="train" selected>' in failed.text
        assert '<option value="failed" selected>' in failed.text
        none = http.get("/runs", params={"pipeline": "score", "state": "failed"})
        assert "No run matches these filters." in none.text


def test_a_large_fan_out_is_one_node_with_a_count(admin: Client) -> None:
    run = _new_run(admin)
    steps = [StepRecord(instance="a", node="a", state="succeeded")] + [
        StepRecord(instance=f"b[{i}]", node="b", index=i, state="succeeded" if i else "running")
        for i in range(30)
    ]
    assert run.token is not None
    with admin.with_key(run.token) as runner:
        runner.report_run(run.id, RunEventsIn(steps=steps))
    full = admin.get_run(run.id, spec=True)
    spec = run_pages._spec_of(full)
    graph = run_pages.run_graph(full, spec)
    by_id = {n.id: n for n in graph.nodes}
    assert set(by_id) == {"a", "b"}
    assert by_id["b"].label == "b (30 instances)"
    assert by_id["b"].sub == "29 of 30 done"
    assert "state-running" in by_id["b"].css
    assert [(e.source, e.target) for e in graph.edges] == [("a", "b")]
