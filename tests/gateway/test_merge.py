"""Merging concurrent requests for one revision into one upstream call: which requests merge,
stacking and cutting back, and through a real gateway the answers each request gets."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import numpy as np
import orjson

from funade.gateway.app import Gateway
from funade.gateway.merge import Answer, Merger, Request, mergeable, split, stack
from funade.store import Database
from tests.deploy.conftest import Plane, until
from tests.servers import serve
from tests.serving.models import Slow


def tensor(name: str, rows: list[list[float]], datatype: str = "FP64") -> dict[str, Any]:
    flat = [v for row in rows for v in row]
    return {"name": name, "datatype": datatype, "shape": [len(rows), len(rows[0])], "data": flat}


def body(**doc: Any) -> bytes:
    return orjson.dumps(doc)


def test_only_plain_json_requests_merge_keyed_by_what_stacks() -> None:
    plain = mergeable(body(inputs=[tensor("x", [[1, 2]])], outputs=[{"name": "y"}], id="a"))
    assert plain is not None
    _, rows, key = plain
    assert rows == 1
    assert key == ((("x", "FP64", (2,)),), ("y",))
    wider = mergeable(body(inputs=[tensor("x", [[1, 2, 3]])]))
    assert wider is not None
    assert wider[2] != key, "other trailing shapes do not stack together"
    for unmergeable in (
        b"not json",
        body(inputs=[]),
        body(inputs=[tensor("x", [[1, 2]])], parameters={"binary_data_output": True}),
        body(inputs=[{**tensor("x", [[1, 2]]), "parameters": {"binary_data_size": 16}}]),
        body(inputs=[{**tensor("x", [[1, 2]]), "data": [[1, 2]]}]),  # nested data
        body(inputs=[{**tensor("x", [[1, 2]]), "data": [1]}]),  # data and shape disagree
        body(inputs=[tensor("a", [[1]]), tensor("b", [[1], [2]])]),  # different row counts
        body(inputs=[tensor("x", [[1, 2]])], outputs=[{"name": "y", "parameters": {}}]),
        b"{" + b" " * 70_000 + b"}",
    ):
        assert mergeable(unmergeable) is None, unmergeable[:80]


def requests(*row_lists: list[list[float]], **extra: Any) -> list[Request]:
    out = []
    for rows in row_lists:
        raw = body(inputs=[tensor("x", rows)], **extra)
        parsed = mergeable(raw)
        assert parsed is not None
        out.append(Request(raw, parsed[0], parsed[1]))
    return out


def test_stacked_inputs_and_answers_cut_back_per_request() -> None:
    batch = requests([[1, 2]], [[3, 4], [5, 6]])
    batch[1].doc["id"] = "second"  # as if the second had sent an id
    merged = orjson.loads(stack(batch))
    assert merged["inputs"] == [tensor("x", [[1, 2], [3, 4], [5, 6]])]
    answer = body(
        model_name="calc",
        model_version="1",
        outputs=[
            {"name": "double", "datatype": "FP64", "shape": [3, 2], "data": [2, 4, 6, 8, 10, 12]},
            {"name": "total", "datatype": "FP64", "shape": [3], "data": [3, 7, 11]},
        ],
    )
    pieces = split(answer, batch)
    assert pieces is not None
    first, second = (orjson.loads(p) for p in pieces)
    assert first == {
        "model_name": "calc",
        "model_version": "1",
        "outputs": [
            {"name": "double", "datatype": "FP64", "shape": [1, 2], "data": [2, 4]},
            {"name": "total", "datatype": "FP64", "shape": [1], "data": [3]},
        ],
    }
    assert second["id"] == "second"
    assert second["outputs"][1]["data"] == [7, 11]
    assert split(body(outputs=[{"name": "y", "shape": [2], "data": [1, 2]}]), batch) is None
    assert split(b"oops", batch) is None


def test_a_spoiled_merged_call_is_sent_again_request_by_request() -> None:
    sent: list[int] = []

    async def send(payload: bytes) -> Answer:
        doc = orjson.loads(payload)
        rows = doc["inputs"][0]["shape"][0]
        sent.append(rows)
        if rows > 1 or doc["inputs"][0]["data"][0] < 0:
            return 400, [], b'{"error": "negative"}', 1
        data = doc["inputs"][0]["data"]
        answer = {"outputs": [{"name": "y", "datatype": "FP64", "shape": [1], "data": data}]}
        return 200, [], orjson.dumps(answer), 1

    async def scenario() -> list[Answer]:
        merger = Merger()
        batch = requests([[1.0]], [[-2.0]], [[3.0]])
        key = ("k",)
        return list(await asyncio.gather(*(merger.submit(key, r, send) for r in batch)))

    first, spoiled, third = asyncio.run(scenario())
    assert sent == [3, 1, 1, 1], "merged, refused, then sent again one by one"
    assert (first[0], spoiled[0], third[0]) == (200, 400, 200)
    assert orjson.loads(third[2])["outputs"][0]["data"] == [3.0]


def test_concurrent_requests_go_out_together_and_each_gets_its_answer(
    plane: Plane, database: Database
) -> None:
    plane.log(Slow(), "slow", sample_input=np.array([[0.0]]))
    plane.client.create_deployment("slow", policy={"public": True})
    plane.wait_rollout("slow", ("succeeded",))
    app = Gateway(database, refresh_seconds=0.1)
    with serve(app) as url:
        until(lambda: "slow" in app.table.routes and app.table.routes["slow"].weights, 5, "route")
        infer = f"{url}/v2/models/slow/infer"
        answers: dict[float, httpx.Response] = {}

        def call(value: float, **extra: Any) -> None:
            doc = {"inputs": [tensor("input", [[value]])], **extra}
            answers[value] = httpx.post(infer, json=doc, timeout=30)

        # keeps the group's call out (2 s, room for the others to arrive on a busy machine)
        first = threading.Thread(target=call, args=(2.0,))
        first.start()
        time.sleep(0.2)
        values = [0.01, 0.02, 0.03, 0.04, 0.05]
        others = [threading.Thread(target=call, args=(v,), kwargs={"id": str(v)}) for v in values]
        for thread in others:
            thread.start()
        for thread in [first, *others]:
            thread.join(30)
    for value in [2.0, *values]:
        answer = answers[value]
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["outputs"][0]["data"] == [value]
        assert data["outputs"][0]["shape"] == [1, 1]
        assert answer.headers["funade-revision"] == "1"
        if value != 2.0:
            assert data["id"] == str(value)
    assert app.merger.merged_calls == 1
    assert app.merger.merged_requests == 5
