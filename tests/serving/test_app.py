"""The model server's app over real HTTP: health, metadata, v2 and v1 inference, batching,
errors (each with its status and message), timeouts and metrics."""

from __future__ import annotations

import asyncio
import gc
import gzip
import socket
import threading
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
import pytest

from funade.serving.app import create_model_app
from funade.serving.collector import hold_collections
from funade.serving.config import ServeConfig
from funade.serving.fastpath import _inference_route
from funade.serving.runtime import Loaded
from tests.registry.helpers import read_manifest_json, write_manifest_json
from tests.servers import serve
from tests.serving.fakes import (
    arithmetic_package,
    loaded,
    native,
    package,
    running,
    v2_body,
    wait_ready,
)
from tests.serving.models import HANG, Arithmetic, Fixed


@pytest.fixture(autouse=True, params=["lean", "uvicorn"])
def http_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on both of ``funade serve``'s servers: the lean front (inference through
    ``InferenceFastPath.reply``) and uvicorn (through its ASGI entry), which answer alike."""
    monkeypatch.setenv("FUNADE_TEST_SERVE_SERVER", request.param)
    return str(request.param)


@pytest.fixture(scope="module")
def calc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return arithmetic_package(tmp_path_factory.mktemp("calc") / "package")


@pytest.fixture
def server(calc: Path) -> Any:
    with running(calc, timeout_ms=10_000) as (url, app):
        yield url, app


def _infer(url: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/calc/infer", json=body, **kwargs)


# --- health and metadata ------------------------------------------------------------------


def test_liveness_answers_while_the_model_loads_and_readiness_waits_for_it(calc: Path) -> None:
    gate = threading.Event()
    model = loaded(calc)

    def slow_load() -> Loaded:
        gate.wait(10)
        return model

    app = create_model_app(ServeConfig(source="calc"), slow_load)
    with serve(app) as url:
        assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
        assert httpx.get(f"{url}/v2/health/ready").status_code == 503
        assert httpx.get(f"{url}/v2/models/calc/ready").status_code == 503
        early = _infer(url, v2_body([[1, 2]]))
        assert early.status_code == 503
        assert "still loading" in early.json()["error"]
        gate.set()
        wait_ready(url)
        assert httpx.get(f"{url}/v2/models/calc/ready").json() == {"ready": True}
        assert _infer(url, v2_body([[1, 2]])).status_code == 200


def test_a_model_that_fails_to_load_reports_why_and_tells_the_server(calc: Path) -> None:
    failures: list[BaseException] = []
    told = threading.Event()

    def broken() -> Loaded:
        raise RuntimeError("weights file is damaged")

    def on_failure(exc: BaseException) -> None:
        failures.append(exc)
        told.set()

    app = create_model_app(ServeConfig(source="calc"), broken, on_load_failure=on_failure)
    with serve(app) as url:
        assert told.wait(10)
        ready = httpx.get(f"{url}/v2/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {"ready": False, "error": "RuntimeError: weights file is damaged"}
        response = _infer(url, v2_body([[1, 2]]))
        assert response.status_code == 503
        assert response.json()["error"] == (
            "The model failed to load: RuntimeError: weights file is damaged"
        )
    assert [str(e) for e in failures] == ["weights file is damaged"]


def test_what_is_loaded_is_frozen_out_of_the_garbage_collectors_sight(calc: Path) -> None:
    """Full collections over a loaded model's objects stalled every request (benchmark p99);
    collections held since the start (``funade serve``) resume once the model is loaded."""
    gc.unfreeze()
    hold_collections()
    try:
        with running(calc):
            assert gc.get_freeze_count() > 1000
            assert gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_collections_held_for_a_model_that_fails_to_load_resume(calc: Path) -> None:
    told = threading.Event()

    def broken() -> Loaded:
        raise RuntimeError("weights file is damaged")

    hold_collections()
    try:
        app = create_model_app(
            ServeConfig(source="calc"), broken, on_load_failure=lambda _: told.set()
        )
        with serve(app):
            assert told.wait(10)
            assert gc.isenabled()
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_classification_names_the_top_classes_with_the_labels_the_package_records(
    tmp_path: Path,
) -> None:
    labelled = package(
        Arithmetic(),
        tmp_path / "labelled",
        {"x": np.array([[1.0, 2.0]])},
        labels={"double": ["left", "right"]},
    )
    with running(labelled) as (url, app):
        wanted = [{"name": "double", "parameters": {"classification": 2}}, {"name": "total"}]
        answer = _infer(url, v2_body([[1, 4], [3, 2]], outputs=wanted))
        assert answer.status_code == 200, answer.text
        double, total = answer.json()["outputs"]
        assert double == {
            "name": "double",
            "datatype": "BYTES",
            "shape": [2, 2],
            "data": ["8.0:1:right", "2.0:0:left", "6.0:0:left", "4.0:1:right"],
        }
        assert total["data"] == [5.0, 5.0]
        calls = len(native(app).calls)
        for output, count, message in (
            ("double", 3, "Output 'double' scores 2 classes; classification 3 asks for more."),
            ("total", 1, "Output 'total' is FP64[-1], not class scores to classify"),
        ):
            wanted = [{"name": output, "parameters": {"classification": count}}]
            refused = _infer(url, v2_body([[1, 4]], outputs=wanted))
            assert refused.status_code == 400
            assert refused.json()["field"] == "outputs[0].parameters.classification"
            assert message in refused.json()["error"]
        assert len(native(app).calls) == calls  # refused before the model ran


def test_server_and_model_metadata(server: Any) -> None:
    url, _ = server
    meta = httpx.get(f"{url}/v2").json()
    assert meta["name"] == "funade"
    assert meta["extensions"] == [
        "binary_tensor_data",
        "classification",
        "model_configuration",
        "statistics",
    ]
    model = httpx.get(f"{url}/v2/models/calc").json()
    assert model == {
        "name": "calc",
        "versions": ["1"],
        "platform": "funade_python_class",
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}],
        "outputs": [
            {"name": "double", "datatype": "FP64", "shape": [-1, 2]},
            {"name": "total", "datatype": "FP64", "shape": [-1]},
        ],
    }
    assert httpx.get(f"{url}/v2/models/calc/versions/1").json() == model
    assert httpx.get(f"{url}/v2/models/calc/versions/1/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/v1/models/calc").json() == {"name": "calc", "ready": True}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/v2/models/other",
            "Model 'other' is not served here; this server serves 'calc' version 1.",
        ),
        (
            "/v2/models/calc/versions/7",
            "Model 'calc' version '7' is not served here; this server serves 'calc' version 1.",
        ),
    ],
)
def test_another_model_or_version_is_404(server: Any, path: str, message: str) -> None:
    url, _ = server
    response = httpx.get(f"{url}{path}")
    assert response.status_code == 404
    assert response.json()["error"] == f"{message} Call /v2/models/calc/infer."
    assert response.json()["code"] == "not_found"
    assert httpx.get(f"{url}{path}/ready").status_code == 404
    assert httpx.post(f"{url}{path}/infer", json=v2_body([[1, 2]])).status_code == 404


# --- inference ----------------------------------------------------------------------------


def test_v2_infer_gives_every_output_and_echoes_the_id(server: Any) -> None:
    url, _ = server
    response = _infer(url, v2_body([[1, 2], [3, 4]], id="req-7"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "model_name": "calc",
        "model_version": "1",
        "id": "req-7",
        "outputs": [
            {"name": "double", "datatype": "FP64", "shape": [2, 2], "data": [2.0, 4.0, 6.0, 8.0]},
            {"name": "total", "datatype": "FP64", "shape": [2], "data": [3.0, 7.0]},
        ],
    }


def test_v2_infer_gives_the_requested_outputs_only(server: Any) -> None:
    url, _ = server
    body = v2_body([[1, 2]], outputs=[{"name": "total"}])
    outputs = _infer(url, body).json()["outputs"]
    assert outputs == [{"name": "total", "datatype": "FP64", "shape": [1], "data": [3.0]}]


def test_curl_default_form_content_type_is_read_as_json(server: Any) -> None:
    """``curl -d '{...}'`` sends application/x-www-form-urlencoded; it means JSON here."""
    url, _ = server
    response = httpx.post(
        f"{url}/v2/models/calc/infer",
        content=httpx.Request("POST", url, json=v2_body([[1, 2]])).content,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.json()["outputs"][1]["data"] == [3.0]


def test_v1_instances_and_inputs(server: Any) -> None:
    url, _ = server
    rows = httpx.post(f"{url}/v1/models/calc:predict", json={"instances": [[1, 2], [3, 4]]})
    assert rows.status_code == 200
    assert rows.json() == {"predictions": [[2.0, 4.0], [6.0, 8.0]]}
    columns = httpx.post(f"{url}/v1/models/calc:predict", json={"inputs": {"x": [[5, 5]]}})
    assert columns.json() == {"predictions": [[10.0, 10.0]]}


def test_concurrent_requests_are_batched_and_split_back_correctly(server: Any) -> None:
    """Mixed batch sizes and mixed requested outputs, sent while the model is busy."""
    url, app = server
    model = native(app)
    model.calls.clear()

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            blocker = asyncio.create_task(
                client.post("/v2/models/calc/infer", json=v2_body([[HANG, HANG]]))
            )
            while not model.calls:  # the model is now busy with the blocker
                await asyncio.sleep(0.01)
            tasks = []
            for i in range(12):
                rows = [[i, r] for r in range(1 + i % 3)]
                wanted = [{"name": "total"}] if i % 2 else None
                body = v2_body(rows, id=str(i), **({"outputs": wanted} if wanted else {}))
                tasks.append(asyncio.create_task(client.post("/v2/models/calc/infer", json=body)))
            await asyncio.sleep(0.3)  # let all twelve reach the queue
            model.release.set()
            return [await blocker, *[await t for t in tasks]]

    blocker, *responses = asyncio.run(main())
    assert blocker.status_code == 200
    for i, response in enumerate(responses):
        doc = response.json()
        assert doc["id"] == str(i)
        rows = np.array([[i, r] for r in range(1 + i % 3)], dtype=float)
        by_name = {o["name"]: o for o in doc["outputs"]}
        assert set(by_name) == ({"total"} if i % 2 else {"double", "total"})
        assert by_name["total"]["data"] == rows.sum(axis=1).tolist()
        if "double" in by_name:
            assert by_name["double"]["data"] == (rows * 2).reshape(-1).tolist()
    assert model.calls[0] == 1
    assert sum(model.calls[1:]) == sum(1 + i % 3 for i in range(12))
    assert len(model.calls) - 1 < 12, model.calls  # merged into fewer calls than requests


def test_a_model_without_a_batch_dimension_is_never_batched(tmp_path: Path) -> None:
    """Its signature has a fixed first dimension (as an ONNX graph may declare)."""
    directory = package(Fixed(), tmp_path / "fixed", np.array([[1.0, 2.0, 3.0]]))
    manifest = read_manifest_json(directory)
    manifest["signature"]["inputs"][0]["shape"] = [3]
    manifest["signature"]["outputs"][0]["shape"] = [1]
    write_manifest_json(directory, manifest)
    target = loaded(directory, name="fixed")
    assert target.model.signature.inputs[0].shape == [3]
    with running(target) as (url, app):
        assert app.state.runtime._batcher.max_batch_size == 1
        body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [3], "data": [1, 2, 3]}]}
        response = httpx.post(f"{url}/v2/models/fixed/infer", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [6.0]


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "message", "field"),
    [
        (
            [{"name": "y", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}],
            "The model has no input 'y'. Send the inputs x (FP64 [-1, 2]).",
            "inputs.y",
        ),
        (
            [],
            "Input 'x' is missing. Send the inputs x (FP64 [-1, 2]).",
            "inputs.x",
        ),
        (
            [{"name": "x", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}],
            "Input 'x' has datatype BYTES; the model takes FP64. Send 'x' as FP64.",
            "inputs.x.datatype",
        ),
        (
            [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}],
            "Input 'x' has shape [1, 3]; the model takes [-1, 2] (-1: any size). "
            "Send 'x' with shape [-1, 2].",
            "inputs.x.shape",
        ),
    ],
)
def test_inputs_are_checked_against_the_signature(
    server: Any, inputs: list[Any], message: str, field: str
) -> None:
    url, _ = server
    response = _infer(url, {"inputs": inputs})
    assert response.status_code == 400
    assert response.json()["error"] == message
    assert response.json()["field"] == field
    assert response.json()["code"] == "invalid_input"


def test_malformed_json_is_400(server: Any) -> None:
    url, _ = server
    response = httpx.post(
        f"{url}/v2/models/calc/infer",
        content=b'{"inputs": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("The request body is not valid JSON")
    v1 = httpx.post(f"{url}/v1/models/calc:predict", content=b"[1,", headers={})
    assert v1.status_code == 400
    assert v1.json()["error"].startswith("The request body is not valid JSON")


@pytest.mark.parametrize("path", ["/v2/models/calc/infer", "/v1/models/calc:predict"])
def test_a_wrong_content_type_is_415(server: Any, path: str) -> None:
    url, _ = server
    response = httpx.post(f"{url}{path}", content=b"<x/>", headers={"content-type": "text/xml"})
    assert response.status_code == 415
    assert response.json()["error"].startswith("Content type 'text/xml' is not accepted here.")
    assert response.json()["field"] == "content-type"


def test_an_image_sent_to_a_model_that_takes_none_is_415(server: Any) -> None:
    url, _ = server
    response = httpx.post(
        f"{url}/v2/models/calc/infer", content=b"\x89PNG", headers={"content-type": "image/png"}
    )
    assert response.status_code == 415
    assert response.json()["error"].startswith("Model 'calc' takes no images;")


def test_octet_stream_without_the_header_length_is_400(server: Any) -> None:
    url, _ = server
    response = httpx.post(
        f"{url}/v2/models/calc/infer",
        content=b"{}",
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "Inference-Header-Content-Length"


def test_bodies_over_the_limit_are_413_declared_or_streamed(calc: Path) -> None:
    with running(calc, max_body_bytes=1000) as (url, _):
        big = v2_body(np.ones((200, 2)))
        declared = _infer(url, big)
        assert declared.status_code == 413
        assert declared.json()["error"].startswith("The request body has more than 1000 bytes")

        def chunks() -> Any:
            for _ in range(20):
                yield b" " * 100

        streamed = httpx.post(
            f"{url}/v2/models/calc/infer",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert streamed.status_code == 413
        assert _infer(url, v2_body([[1, 2]])).status_code == 200


def _raw_request(url: str, head: bytes, body: bytes, *, half_close: bool) -> bytes:
    """Send a request whose body is shorter than its Content-Length; return what came back."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
            if b"\r\n\r\n" in reply and not half_close:
                break
    return reply


HEAD = (
    b"POST /v2/models/calc/infer HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
)


def test_a_body_that_stops_short_is_408_after_the_timeout(calc: Path) -> None:
    """The client declares 500 bytes, sends 36 and waits."""
    with running(calc, timeout_ms=300) as (url, _):
        reply = _raw_request(url, HEAD, b'{"inputs": [' * 3, half_close=False)
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert b"did not arrive within 300 ms (36 of 500 bytes came)" in reply


def test_a_body_cut_off_by_the_client_closing_is_counted_as_400(server: Any) -> None:
    """The client closes its side after 36 of 500 bytes: nothing can be answered, the server
    counts it as a client error and goes on serving."""
    url, _ = server
    assert _raw_request(url, HEAD, b'{"inputs": [' * 3, half_close=True) == b""
    key = 'funade_requests_total{model="calc",protocol="v2",status="400"}'
    deadline = time.monotonic() + 10
    while key not in (samples := _samples(httpx.get(f"{url}/metrics").text)):
        assert time.monotonic() < deadline, samples
        time.sleep(0.02)
    assert samples[key] == 1
    assert _infer(url, v2_body([[1, 2]])).status_code == 200


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_read_and_limited_once_decompressed(
    calc: Path, encoding: str
) -> None:
    def compress(data: bytes) -> bytes:
        return gzip.compress(data) if encoding == "gzip" else zlib.compress(data)

    headers = {"content-type": "application/json", "content-encoding": encoding}
    with running(calc, max_body_bytes=5000) as (url, _):
        body = orjson.dumps(v2_body([[1, 2]]))
        ok = httpx.post(f"{url}/v2/models/calc/infer", content=compress(body), headers=headers)
        assert ok.status_code == 200, ok.text
        assert ok.json()["outputs"][1]["data"] == [3.0]
        bomb = compress(b" " * 1_000_000)  # 1 MB of spaces is a few kB compressed
        assert len(bomb) < 5000
        too_big = httpx.post(f"{url}/v2/models/calc/infer", content=bomb, headers=headers)
        assert too_big.status_code == 413
        cut = httpx.post(
            f"{url}/v2/models/calc/infer", content=compress(body)[:-8], headers=headers
        )
        assert cut.status_code == 400
        assert cut.json()["field"] == "content-encoding"


def test_an_unknown_content_encoding_is_415(server: Any) -> None:
    url, _ = server
    response = httpx.post(
        f"{url}/v2/models/calc/infer",
        content=b"x",
        headers={"content-type": "application/json", "content-encoding": "br"},
    )
    assert response.status_code == 415
    assert response.json()["error"] == (
        "Content encoding 'br' is not accepted here. Send the body uncompressed, or compressed "
        "with gzip or deflate."
    )


def test_a_model_that_raises_gives_a_short_500_and_the_server_stays_up(server: Any) -> None:
    url, _ = server
    response = _infer(url, v2_body([[-1, 2]]))
    assert response.status_code == 500
    assert response.json() == {
        "error": "The model failed on this input: ValueError: negative values are not allowed"
    }
    assert "Traceback" not in response.text
    assert _infer(url, v2_body([[1, 2]])).status_code == 200


def test_a_hung_model_call_is_cut_off_by_the_timeout(calc: Path) -> None:
    with running(calc, timeout_ms=300) as (url, app):
        response = _infer(url, v2_body([[HANG, 1]]), timeout=10)
        assert response.status_code == 504
        assert response.json()["error"] == "The model did not answer within 300 ms."
        assert httpx.get(f"{url}/v2/health/live").status_code == 200
        native(app).release.set()


# --- metrics ------------------------------------------------------------------------------


def test_metrics_count_requests_latency_queue_batches_and_load_time(server: Any) -> None:
    url, _ = server
    assert _infer(url, v2_body([[1, 2], [3, 4]])).status_code == 200
    assert _infer(url, {"inputs": []}).status_code == 400
    text = httpx.get(f"{url}/metrics").text
    samples = _samples(text)
    assert samples['funade_requests_total{model="calc",protocol="v2",status="200"}'] == 1
    assert samples['funade_requests_total{model="calc",protocol="v2",status="400"}'] == 1
    assert samples['funade_request_duration_seconds_count{model="calc"}'] == 2
    assert samples['funade_queue_duration_seconds_count{model="calc"}'] == 1
    assert samples['funade_batch_size_sum{model="calc"}'] == 2
    assert samples['funade_inflight_requests{model="calc"}'] == 0
    assert samples['funade_model_load_seconds{model="calc"}'] >= 0
    assert "# TYPE funade_request_duration_seconds histogram" in text


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/models/calc/infer", ("v2", {"name": "calc"})),
        ("/v2/models/calc/versions/3/infer", ("v2", {"name": "calc", "version": "3"})),
        ("/v1/models/calc:predict", ("v1", {"name": "calc"})),
        ("/v1/models/a:b:predict", ("v1", {"name": "a:b"})),
        ("/v2/models//infer", None),
        ("/v2/models/calc/versions//infer", None),
        ("/v1/models/:predict", None),
        ("/v1/models/calc:explain", None),
        ("/v2/models/calc/ready", None),
        ("/v2/models/calc/infer/", None),
    ],
)
def test_the_inference_fast_path_matches_exactly_the_inference_routes(
    path: str, expected: Any
) -> None:
    assert _inference_route(path) == expected


def test_other_methods_and_paths_still_go_through_the_router(server: Any) -> None:
    url, _ = server
    assert httpx.get(f"{url}/v2/models/calc/infer").status_code == 405
    assert httpx.post(f"{url}/v2/models//infer", json={}).status_code == 404
    assert httpx.get(f"{url}/nowhere").status_code == 404


@pytest.mark.parametrize("path", ["/v2/", "/v2/models/calc/", "/v2/health/ready/", "/metrics/"])
def test_a_trailing_slash_is_no_route_and_no_redirect(server: Any, path: str) -> None:
    """A 404 in the protocol's error shape, as for any path that is no route (Triton refuses
    `/v2/` too); not a 307 to the path without it, whose Location would name the replica's own
    address (behind a gateway, a Unix socket's ``http://replica``)."""
    url, _ = server
    response = httpx.get(f"{url}{path}", follow_redirects=False)
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json() == {
        "error": "There is no such route on this model server. Call /v2/models/<name>/infer.",
        "code": "not_found",
        "fix": "Call /v2/models/<name>/infer.",
    }


def test_a_body_sent_in_parts_is_read_as_it_comes(server: Any) -> None:
    """The head and part of the body first, the rest a moment later: the lean front does not
    hold the body whole when the handler starts, so it is read through ``receive``."""
    url, _ = server
    body = orjson.dumps(v2_body([[1, 2]]))
    head = (
        b"POST /v2/models/calc/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + body[:10])
        time.sleep(0.2)
        sock.sendall(body[10:])
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert orjson.loads(reply.partition(b"\r\n\r\n")[2])["outputs"][1]["data"] == [3.0]
