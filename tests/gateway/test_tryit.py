"""The try-it page at the gateway: the static page, and /try/<deployment>/info checked exactly as
predictions are (the deployment's allowlist, the key, its allowlist, its deployment)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from funade.deploy.policy import Policy
from funade.gateway.app import Gateway
from funade.gateway.table import Route
from funade.gateway.tryit import model_info, stable_revision
from funade.store.schema import utcnow
from tests.deploy.conftest import Plane, until


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def group_token(plane: Plane, deployment: str, **extra: object) -> str:
    made = plane.client._request(
        "POST",
        "/api/v1/keys",
        json={
            "name": f"group for {deployment}",
            "scopes": ["predict"],
            "project": "default",
            "deployment": deployment,
            "kind": "group",
            "expires_at": (utcnow() + timedelta(hours=8)).isoformat(),
            **extra,
        },
    )
    key: str = made.json()["key"]
    return key


def test_the_page_is_static_and_public(gateway: tuple[str, Gateway]) -> None:
    url, _ = gateway
    page = httpx.get(f"{url}/try/calc")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<script src="/try/_static/try.js' in page.text
    assert "calc" not in page.text  # no data in it: the script asks for it with the key
    assert httpx.get(f"{url}/try/nope").status_code == 200  # the same page for any name
    script = httpx.get(f"{url}/try/_static/try.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in script.text
    assert httpx.get(f"{url}/try/_static/try.css").headers["content-type"].startswith("text/css")
    missing = httpx.get(f"{url}/try/calc/nope")
    assert missing.status_code == 404
    assert "There is no page '/try/calc/nope'" in missing.json()["error"]
    posted = httpx.post(f"{url}/try/calc/info")
    assert posted.status_code == 405
    assert posted.headers["allow"] == "GET, HEAD"


def test_info_tells_the_signature_of_the_stable_revision(
    calc: Plane, gateway: tuple[str, Gateway]
) -> None:
    url, _ = gateway
    key = group_token(calc, "calc")
    response = httpx.get(f"{url}/try/calc/info", headers=bearer(key))
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["deployment"] == "calc"
    assert info["model_version"] == "calc:1"
    assert info["revision"] == 1
    assert info["takes"] == "values"
    assert info["predict_path"] == "/v2/models/calc/infer"
    assert info["inputs"] == [
        {"name": "x", "datatype": "FP64", "shape": [-1, 2], "image": None, "example": [1.0, 2.0]}
    ]
    assert info["outputs"] == [
        {"name": "double", "datatype": "FP64", "shape": [-1, 2], "labels": None},
        {"name": "total", "datatype": "FP64", "shape": [-1], "labels": None},
    ]
    assert info["key"]["name"] == "group for calc"
    assert info["key"]["kind"] == "group"
    assert info["key"]["expires_at"] is not None
    assert response.headers["cache-control"] == "no-store"


def test_info_refuses_as_predictions_do(calc: Plane, gateway: tuple[str, Gateway]) -> None:
    url, _ = gateway
    missing = httpx.get(f"{url}/try/calc/info")
    assert missing.status_code == 401
    assert missing.json()["error"].startswith("Deployment 'calc' needs an API key.")
    wrong = httpx.get(f"{url}/try/calc/info", headers=bearer("fnd_000000000000_nope"))
    assert wrong.status_code == 401

    other = group_token(calc, "other")
    refused = httpx.get(f"{url}/try/calc/info", headers=bearer(other))
    assert refused.status_code == 403
    assert "works only for deployment 'other'" in refused.json()["error"]

    elsewhere = group_token(calc, "calc", allow_cidrs=["10.0.0.0/8"])
    outside = httpx.get(f"{url}/try/calc/info", headers=bearer(elsewhere))
    assert outside.status_code == 403
    assert "may be used only from 10.0.0.0/8" in outside.json()["error"]
    assert "127.0.0.1" in outside.json()["error"]

    unknown = httpx.get(f"{url}/try/nope/info", headers=bearer(other))
    assert unknown.status_code == 404
    assert unknown.json()["error"].startswith("Deployment 'nope' does not exist.")

    reader = calc.client.create_key("reader", ["read"], project="default").key
    no_predict = httpx.get(f"{url}/try/calc/info", headers=bearer(reader))
    assert no_predict.status_code == 403
    assert "may not call deployment 'calc'" in no_predict.json()["error"]


def test_the_deployments_allowlist_and_public_policy_apply(
    calc: Plane, gateway: tuple[str, Gateway]
) -> None:
    url, app = gateway
    calc.client.update_deployment("calc", policy={"allow_cidrs": ["10.0.0.0/8"]})
    key = group_token(calc, "calc")
    until(
        lambda: app.table.routes["calc"].policy.allow_cidrs == ["10.0.0.0/8"],
        10,
        "the gateway to reload the deployment's policy",
    )
    refused = httpx.get(f"{url}/try/calc/info", headers=bearer(key))
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("Address 127.0.0.1 may not call 'calc'.")

    # A policy change merges: the allowlist goes only when it is reset (null) explicitly.
    calc.client.update_deployment("calc", policy={"public": True, "allow_cidrs": None})
    until(lambda: app.table.routes["calc"].policy.public, 10, "the deployment to become public")
    public = httpx.get(f"{url}/try/calc/info")  # a public deployment's page needs no key
    assert public.status_code == 200, public.text
    assert public.json()["public"] is True
    assert public.json()["key"] is None


def test_a_group_tokens_predictions_are_counted(calc: Plane, gateway: tuple[str, Gateway]) -> None:
    url, _ = gateway
    key = group_token(calc, "calc")
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
    for _ in range(3):
        answered = httpx.post(f"{url}/v2/models/calc/infer", json=body, headers=bearer(key))
        assert answered.status_code == 200, answered.text

    def counted() -> bool:
        listed = calc.client._request("GET", "/api/v1/keys", params={"kind": "group"}).json()
        return [(k["name"], k["predictions"]) for k in listed] == [("group for calc", 3)]

    until(counted, 10, "the gateway to flush the key's prediction count")


def route(weights: tuple[tuple[int, int], ...], versions: dict[int, str]) -> Route:
    return Route(
        id=1,
        name="d",
        project="p",
        policy=Policy(),
        networks=(),
        weights=weights,
        shadow=None,
        replicas={},
        versions=versions,
    )


def test_the_stable_revision_takes_most_traffic() -> None:
    assert stable_revision(route(((1, 90), (2, 10)), {1: "m:1", 2: "m:2"})) == 1
    assert stable_revision(route(((1, 20), (2, 80)), {1: "m:1", 2: "m:2"})) == 2
    assert stable_revision(route(((1, 50), (2, 50)), {1: "m:1", 2: "m:2"})) == 1
    assert stable_revision(route((), {1: "m:1", 3: "m:3"})) == 3
    assert stable_revision(route((), {})) is None


@pytest.mark.parametrize(
    ("inputs", "takes"),
    [
        ([{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8], "image": {}}], "image"),
        (
            [
                {"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8], "image": {}},
                {"name": "note", "datatype": "BYTES", "shape": [-1]},
            ],
            "values",
        ),
        ([{"name": "age", "datatype": "INT64", "shape": [-1]}], "values"),
    ],
)
def test_a_model_takes_photos_when_its_only_input_is_an_image(
    inputs: list[dict[str, object]], takes: str
) -> None:
    info = model_info(
        model="m",
        version=2,
        description="",
        signature={"inputs": inputs, "outputs": [], "input_format": "tensors"},
        examples=[
            {"name": "age", "datatype": "INT64", "shape": [2], "data": [41, 29]},
            {"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.0] * 64},
        ],
    )
    assert info["takes"] == takes
    assert info["model_version"] == "m:2"
    examples = {i["name"]: i["example"] for i in info["inputs"]}
    assert examples.get("image") is None  # photos have no example row
    if "age" in examples:
        assert examples["age"] == [41]
