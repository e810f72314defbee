"""The models section in a real browser: register a model and see it with its lineage."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import funade
from funade.api.schemas import RunIn, VersionOut
from funade.client import Client
from funade.registry import lineage
from tests.serving.models import Arithmetic
from tests.ui.conftest import TABLET, Page, expect, graph_text_overflows, scrolls_sideways

SAMPLE = {"x": np.array([[1.0, 2.0], [3.0, 4.0]])}
FEATURES = "sha256:" + "ab" * 32
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
GIT += ["-c", "commit.gpgsign=false"]


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The training code's repository: one commit, then an uncommitted edit (dirty)."""
    root = tmp_path / "churn-repo"
    root.mkdir()
    _git(root, "init", "--quiet", "--initial-branch=main")
    (root / "train.py").write_text("print('train')\n")
    _git(root, "add", "train.py")
    _git(root, "commit", "--quiet", "-m", "first")
    _git(root, "remote", "add", "origin", "https://git.example.com/acme/churn.git")
    (root / "train.py").write_text("print('train better')\n")
    return root


def register_with_lineage(
    admin: Client,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str = "churn",
    dataset: str = "train",
) -> tuple[VersionOut, int]:
    """``name`` version 1, registered from a pipeline run's step in ``repo`` with a dataset."""
    run = admin.create_run(RunIn(pipeline="training", spec={"name": "training"}))
    monkeypatch.setattr(lineage, "_script_dir", lambda: repo)
    monkeypatch.setenv("FUNADE_RUN_ID", str(run.id))
    monkeypatch.setenv("FUNADE_PIPELINE", "training")
    monkeypatch.setenv("FUNADE_RUN_STEP", "register")
    monkeypatch.setenv("FUNADE_RUN_INPUTS", json.dumps({"features": FEATURES, "c": {"value": 1}}))
    version = funade.log_model(
        Arithmetic(),
        name,
        sample_input=SAMPLE,
        client=admin,
        progress=False,
        datasets={dataset: np.arange(6.0)},
        params={"c": 1.0},
        metrics={"auc": 0.91, "f1": 0.8},
        tags={"team": "growth"},
        description="Trained on the March export.",
    )
    admin.update_model(name, description="Who is about to leave.", tags={"owner": "growth"})
    for variable in ("FUNADE_RUN_ID", "FUNADE_PIPELINE", "FUNADE_RUN_STEP", "FUNADE_RUN_INPUTS"):
        monkeypatch.delenv(variable)
    return version, run.id


def test_register_a_model_and_see_it_with_its_lineage(
    signed_in: Page,
    app_url: str,
    admin: Client,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    shot: Callable[[Page, str], Path],
) -> None:
    page = signed_in
    version, run_id = register_with_lineage(admin, repo, monkeypatch)
    commit = _git(repo, "rev-parse", "HEAD")
    assert version.lineage["git"]["commit"] == commit
    admin.create_deployment("churn", name="churn-api")  # no controller here: it stays pending

    page.goto(f"{app_url}/models?project=default")
    expect(page.get_by_role("heading", name=re.compile("^Models"))).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="churn", exact=True))
    expect(row).to_contain_text("Who is about to leave.")
    shot(page, "models")

    page.get_by_role("link", name="churn", exact=True).click()
    expect(page.get_by_role("heading", name="churn", exact=True)).to_be_visible()
    expect(page.get_by_text("No aliases yet.")).to_be_visible()
    versions = page.get_by_role("region", name="Versions")
    expect(versions.get_by_role("columnheader", name="auc")).to_be_visible()
    expect(versions.get_by_role("row").nth(1)).to_contain_text("python_class")
    shot(page, "model")

    page.get_by_role("link", name="Version 1", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile(r"^churn version 1"))).to_be_visible()
    graph = page.locator(".graph svg")
    expect(graph.locator('[data-node="commit"]')).to_contain_text(f"commit {commit[:8]}")
    expect(graph.locator('[data-node="commit"]')).to_contain_text("acme/churn · dirty")
    expect(graph.locator('[data-node="data-train"]')).to_contain_text("train")
    expect(graph.locator('[data-node="input-features"]')).to_contain_text(FEATURES[7:19])
    expect(graph.locator('[data-node="input-c"]')).to_have_count(0)  # a parameter, not data
    expect(graph.locator('[data-node="run"]')).to_contain_text(f"run #{run_id}")
    expect(graph.locator('[data-node="run"]')).to_contain_text("running · training · register")
    assert graph_text_overflows(page) == []
    expect(graph.locator('[data-node="run"]')).to_have_attribute(
        "href", f"/runs/{run_id}?project=default"
    )
    expect(graph.locator('[data-node="version"]')).to_contain_text("churn:1")
    expect(graph.locator('[data-node="deployment-churn-api"]')).to_have_attribute(
        "href", "/deployments/churn-api?project=default"
    )
    digest = version.lineage["datasets"]["train"]["digest"]
    expect(page.get_by_role("cell", name=digest)).to_be_visible()
    expect(page.get_by_role("table", name="Signature inputs")).to_contain_text("FP64")
    expect(page.get_by_role("table", name="Example 1 outputs")).to_contain_text("2.0, 4.0, 6.0")
    expect(page.get_by_role("table", name="Metrics", exact=True)).to_contain_text("0.91")
    shot(page, "version")

    page.get_by_role("link", name="churn", exact=True).click()
    page.get_by_label("Alias", exact=True).fill("production")
    page.get_by_label("Version", exact=True).fill("1")
    page.get_by_role("button", name="Set alias").click()
    aliases = page.locator("#aliases")
    expect(aliases.get_by_role("row", name=re.compile("production"))).to_contain_text("version 1")
    assert admin.get_version("churn", "production").version == 1
    shot(page, "alias-set")

    page.get_by_label("Alias", exact=True).fill("Not Valid")
    page.get_by_role("button", name="Set alias").click()
    expect(page.get_by_role("alert")).to_contain_text("alias")
    shot(page, "alias-refused")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove the alias production").click()
    expect(page.get_by_text("No aliases yet.")).to_be_visible()
    assert admin.list_aliases("churn") == []


def test_lineage_boxes_show_whole_labels(
    signed_in: Page,
    app_url: str,
    admin: Client,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    shot: Callable[[Page, str], Path],
) -> None:
    """Long names are drawn whole: a box grows to its text, and text longer than the widest box
    wraps inside it; on a tablet the graph scrolls sideways and says so."""
    page = signed_in
    name = "churn-prediction-for-the-march-export"
    dataset = "customers_with_their_last_twelve_months_of_invoices_and_support_tickets"
    register_with_lineage(admin, repo, monkeypatch, name=name, dataset=dataset)
    admin.create_deployment(name, name="churn-prediction-api-for-the-sales-team")

    page.goto(f"{app_url}/models/{name}/versions/1?project=default")
    graph = page.locator(".graph svg")
    expect(graph.locator('[data-node="version"]')).to_have_attribute("data-label", f"{name}:1")
    expect(graph.locator('[data-node="version"] text').first).to_have_text(f"{name}:1")
    data = graph.locator(f'[data-node="data-{dataset}"] text:not(.sub)')
    assert data.count() > 1, "wider than the widest box: wrapped"
    assert "".join(data.all_text_contents()) == dataset
    deployment = graph.locator('[data-node="deployment-churn-prediction-api-for-the-sales-team"]')
    expect(deployment.locator("text").first).to_have_text("churn-prediction-api-for-the-sales-team")
    assert "…" not in graph.text_content()  # type: ignore[operator]
    assert graph_text_overflows(page) == []
    assert not scrolls_sideways(page)
    expect(page.locator(".graph-hint")).to_be_hidden()
    shot(page, "long-labels")

    page.set_viewport_size(TABLET)
    assert graph_text_overflows(page) == []
    assert not scrolls_sideways(page), "the graph's box scrolls, not the page"
    box = page.locator(".graph")
    expect(page.locator(".graph-hint")).to_be_visible()
    expect(box).to_have_class(re.compile(r"\bmore-right\b"))
    expect(box).to_have_attribute("tabindex", "0")
    # Shrunk to 3/4 of its size: smaller all over, with no empty band below it.
    drawn = graph.evaluate(
        "s => [s.getBoundingClientRect().width, s.getBoundingClientRect().height,"
        " s.viewBox.baseVal.width, s.viewBox.baseVal.height, s.parentElement.clientHeight]"
    )
    width, height, full_width, full_height, box_height = drawn
    assert width == pytest.approx(0.75 * full_width, abs=1.5), drawn
    assert height == pytest.approx(full_height * width / full_width, abs=1.5), drawn
    assert box_height <= height + 20, drawn  # its own height, and a scroll bar at most
    box.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    expect(box).to_have_class(re.compile(r"\bmore-left\b"))
    expect(box).not_to_have_class(re.compile(r"\bmore-right\b"))
    shot(page, "long-labels-tablet")


def test_archive_a_version_and_back(
    signed_in: Page, app_url: str, admin: Client, shot: Callable[[Page, str], Path]
) -> None:
    page = signed_in
    funade.log_model(Arithmetic(), "calc", sample_input=SAMPLE, client=admin, progress=False)
    page.goto(f"{app_url}/models/calc/versions/1?project=default")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Archive", exact=True).click()
    expect(page.get_by_role("button", name="Unarchive")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("archived"))).to_be_visible()
    assert admin.get_version("calc", 1).archived
    shot(page, "archived")
    page.get_by_role("button", name="Unarchive").click()
    expect(page.get_by_role("button", name="Archive", exact=True)).to_be_visible()
    assert not admin.get_version("calc", 1).archived
