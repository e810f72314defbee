"""The models pages without a browser: what the HTML holds, for whom, and every error path."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pytest

import funade
from funade.client import Client
from funade.registry.images import ImageInput
from funade.ui.pages import models as model_pages
from tests.serving.models import Arithmetic, Brightness

SAMPLE = {"x": np.array([[1.0, 2.0], [3.0, 4.0]])}


@contextmanager
def signed(app_url: str, key: str) -> Iterator[httpx.Client]:
    """An HTTP client holding a dashboard session signed in with ``key``."""
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        response = http.post("/signin", data={"key": key, "next": "/"})
        assert response.status_code == 303, response.text
        yield http


@pytest.fixture
def as_admin(app_url: str, admin_key: str) -> Iterator[httpx.Client]:
    with signed(app_url, admin_key) as http:
        yield http


@pytest.fixture
def calc(admin: Client) -> Client:
    """``calc`` version 1 (metrics, params, tags) and version 2, with ``production`` → 1."""
    for metrics in ({"auc": 0.75}, {"auc": 0.8}):
        funade.log_model(
            Arithmetic(),
            "calc",
            sample_input=SAMPLE,
            client=admin,
            progress=False,
            metrics=metrics,
            params={"c": 0.5},
            tags={"team": "growth"},
        )
    admin.set_alias("calc", "production", 1)
    return admin


def text_of(response: httpx.Response) -> str:
    """The page's text, tags dropped and entities decoded, spaces squeezed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.text)))


def test_a_model_that_does_not_exist_is_a_404_page(as_admin: httpx.Client, calc: Client) -> None:
    response = as_admin.get("/models/nope?project=default")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    page = text_of(response)
    assert "Model 'nope' does not exist in project 'default'." in page
    assert "What to do:" in page
    missing = as_admin.get("/models/calc/versions/9")
    assert missing.status_code == 404
    assert "Model 'calc' has no version 9 (latest is 2)." in text_of(missing)
    no_alias = as_admin.get("/models/calc/versions/staging")
    assert no_alias.status_code == 404
    assert "no alias 'staging'" in text_of(no_alias)
    project = as_admin.get("/models?project=nowhere")
    assert project.status_code == 404
    assert "nowhere" in text_of(project)


def test_a_cursor_the_server_did_not_issue_is_refused_in_words(
    as_admin: httpx.Client, calc: Client
) -> None:
    for path in ("/models?cursor=bogus", "/models/calc?cursor=bogus"):
        response = as_admin.get(path)
        assert response.status_code == 422, path
        assert "Cursor 'bogus' is not one this server issued." in text_of(response)


def test_the_model_page_shows_aliases_versions_and_the_alias_form(
    as_admin: httpx.Client, calc: Client
) -> None:
    response = as_admin.get("/models/calc?project=default")
    assert response.status_code == 200
    body = response.text
    assert 'href="/models/calc/versions/1?project=default">version 1</a>' in body
    assert 'data-base="/api/v1/projects/default/models/calc/aliases/"' in body
    assert 'data-method="PUT"' in body
    assert 'name="version" type="number"' in body
    assert 'data-path="/api/v1/projects/default/models/calc/aliases/production"' in body
    assert 'data-method="DELETE"' in body
    assert "/ui/static/models.js" in body
    page = text_of(response)
    assert re.search(r"auc.*\b1\b.*0\.75", page) is not None  # version 1's auc in its row
    version = as_admin.get("/models/calc/versions/production")  # an alias works as the ref
    assert version.status_code == 200
    assert "data-body='{\"archived\": true}'" in version.text
    assert "calc version 1" in text_of(version)


def test_a_read_only_session_sees_no_forms(
    app_url: str, admin: Client, calc: Client, as_admin: httpx.Client
) -> None:
    reader = admin.create_key("reader", ["read"], project="default")
    with signed(app_url, reader.key) as http:
        model = http.get("/models/calc")
        assert model.status_code == 200
        assert "production" in model.text
        assert 'href="/models/calc/versions/2?project=default"' in model.text
        assert "alias-form" not in model.text
        assert "data-method" not in model.text
        assert "models.js" not in model.text
        version = http.get("/models/calc/versions/1")
        assert version.status_code == 200
        assert "data-path" not in version.text
        assert "Unarchive" not in version.text
        assert ">Archive</button>" not in version.text
        by = admin.get_version("calc", 1).created_by
        assert f'title="key {by}">{by}</code>' in version.text  # key names are for admins
    assert 'title="key ' in (admin_page := as_admin.get("/models/calc/versions/1").text)
    assert f"{by}</code>" not in admin_page  # the admin sees the key's name instead


def test_search_archived_and_pages(
    as_admin: httpx.Client, admin_key: str, app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = httpx.Client(base_url=app_url, headers={"authorization": f"Bearer {admin_key}"})
    with api:
        for name in ("churn", "churn-eu", "fraud", "old-churn"):
            made = api.post(
                "/api/v1/projects/default/models", json={"name": name, "description": f"{name}!"}
            )
            assert made.status_code == 201, made.text
        api.patch("/api/v1/projects/default/models/old-churn", json={"archived": True})
    monkeypatch.setattr(model_pages, "PAGE", 2)

    first = as_admin.get("/models?project=default")
    assert first.status_code == 200
    assert re.findall(r'<a href="/models/([\w-]+)\?project=default">', first.text) == [
        "churn",
        "churn-eu",
    ]
    older = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert older is not None
    second = as_admin.get(html.unescape(older.group(1)))
    assert re.findall(r'<a href="/models/([\w-]+)\?project=default">', second.text) == ["fraud"]
    assert 'rel="next"' not in second.text
    assert "Back to the first page" in second.text

    found = as_admin.get("/models", params={"q": "churn", "project": "default"})
    names = re.findall(r'<a href="/models/([\w-]+)\?project=default">', found.text)
    assert names == ["churn", "churn-eu"]
    assert 'value="churn"' in found.text  # the search box keeps what was typed
    archived = as_admin.get("/models", params={"archived": "true"})
    assert re.findall(r'<a href="/models/([\w-]+)\?project=default">', archived.text) == [
        "old-churn"
    ]
    assert "<h1>Archived models" in archived.text
    assert 'value="true" checked' in archived.text
    none = as_admin.get("/models", params={"q": "zzz"})
    assert "No models whose name contains “zzz”." in text_of(none)


def test_versions_are_paged(
    as_admin: httpx.Client, calc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    funade.log_model(Arithmetic(), "calc", sample_input=SAMPLE, client=calc, progress=False)
    monkeypatch.setattr(model_pages, "PAGE", 2)
    first = as_admin.get("/models/calc")
    assert re.findall(r'aria-label="Version (\d+)"', first.text) == ["3", "2"]
    older = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert older is not None
    second = as_admin.get(html.unescape(older.group(1)))
    assert re.findall(r'aria-label="Version (\d+)"', second.text) == ["1"]
    assert "Back to the newest versions" in second.text


def test_a_version_without_lineage_or_golden_examples(
    as_admin: httpx.Client, calc: Client, app_url: str, admin_key: str
) -> None:
    """Lineage is whatever the client sent: an empty one draws just the version."""
    first = calc.get_version("calc", 1)
    with httpx.Client(base_url=app_url, headers={"authorization": f"Bearer {admin_key}"}) as api:
        made = api.post(
            "/api/v1/projects/default/models/calc/versions",
            json={"artifact": first.artifact.digest},
        )
        assert made.status_code == 201, made.text
    response = as_admin.get("/models/calc/versions/3")
    assert response.status_code == 200
    assert re.findall(r'data-node="([\w-]+)"', response.text) == ["version"]
    page = text_of(response)
    assert "Not registered from a git repository." in page
    assert "Registered outside a pipeline run." in page
    assert "No datasets were recorded." in page
    assert "Golden examples" not in page


def test_an_image_input_and_long_golden_tensors(as_admin: httpx.Client, admin: Client) -> None:
    sample = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    funade.log_model(
        Brightness(),
        "bright",
        sample_input=sample,
        image=ImageInput(),
        client=admin,
        progress=False,
    )
    page = text_of(as_admin.get("/models/bright/versions/1"))
    assert "input FP32 [-1, 1, 8, 8] yes (photos are cropped to fit)" in page
    assert "… (104 more)" in page  # 128 values, the first 24 shown
    funade.log_model(
        Brightness(),
        "bright",
        sample_input=sample,
        image=ImageInput(find=True),
        client=admin,
        progress=False,
    )
    page = text_of(as_admin.get("/models/bright/versions/2"))
    assert "yes (photos are cropped to what stands out in them, then cropped to fit)" in page
