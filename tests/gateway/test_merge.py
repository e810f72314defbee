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
import pytest

from funade.errors import InvalidInputError
from funade.gateway.app import Gateway
from funade.gateway.forms import (
    Answer,
    Request,
    mergeable,
    mergeable_binary,
    mergeable_v1,
    split,
    stack,
)
from funade.gateway.merge import Merger
from funade.gateway.server import gateway_app
from funade.settings import load_settings
from funade.store import Database
from tests.deploy.conftest import Plane, until
from tests.servers import serve_gateway_app
from tests.serving.models import Paced, Slow


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

    async def send(payload: bytes, replaced: list[tuple[str, str]]) -> Answer:
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
    with serve_gateway_app(app) as url:
        until(lambda: "slow" in app.table.routes and app.table.routes["slow"].weights, 5, "route")
        infer = f"{url}/v2/models/slow/infer"
        answers: dict[float, httpx.Response] = {}

        def call(value: float, **extra: Any) -> None:
            doc = {"inputs": [tensor("input", [[value]])], **extra}
            answers[value] = httpx.post(infer, json=doc, timeout=60)

        # Nothing is out: the first goes at once, unparsed (nothing to merge with). The second
        # finds it out, so it is parsed into its merge group, which is idle: it goes on the
        # loop's next turn and keeps the group's call out (2 s, room for the others to arrive
        # on a busy machine), so the five after it wait and go together.
        first = threading.Thread(target=call, args=(2.5,))
        first.start()
        time.sleep(0.2)
        second = threading.Thread(target=call, args=(2.0,), kwargs={"id": "2.0"})
        second.start()
        time.sleep(0.2)
        values = [0.01, 0.02, 0.03, 0.04, 0.05]
        others = [threading.Thread(target=call, args=(v,), kwargs={"id": str(v)}) for v in values]
        for thread in others:
            thread.start()
        for thread in [first, second, *others]:
            thread.join(30)
    for value in [2.5, 2.0, *values]:
        answer = answers[value]
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["outputs"][0]["data"] == [value]
        assert data["outputs"][0]["shape"] == [1, 1]
        assert answer.headers["funade-revision"] == "1"
        if value != 2.5:
            assert data["id"] == str(value)
    assert app.merger.merged_calls == 1
    assert app.merger.merged_requests == 5
    assert app.merger.submitted == 6, "the first went unparsed, past the merge groups"


def binary_body(rows: list[list[float]], *, outputs: Any = None, **doc: Any) -> tuple[bytes, str]:
    """A request with the binary tensor extension (x as FP64 bytes), and its header length."""
    raw = np.asarray(rows, dtype="<f8").tobytes()
    size = {"binary_data_size": len(raw)}
    header: dict[str, Any] = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [len(rows), 2], "parameters": size}],
        **doc,
    }
    if outputs is not None:
        header["outputs"] = outputs
    head = orjson.dumps(header)
    return head + raw, str(len(head))


Call = tuple[str, bytes, dict[str, str]]


def forms(value: float, key: str, id_: str) -> list[Call]:
    """One request of every form for a one-row input [value, value / 2]."""
    row = [[value, value / 2]]
    v2 = "/v2/models/paced/infer"
    v1 = "/v1/models/paced:predict"
    json_ = {"x-api-key": key, "content-type": "application/json"}
    binary, length = binary_body(
        row, outputs=[{"name": "double", "parameters": {"binary_data": True}}], id=id_
    )
    mixed, mixed_length = binary_body(
        row, outputs=[{"name": "total"}, {"name": "double", "parameters": {"binary_data": True}}]
    )
    all_binary, all_length = binary_body(row, parameters={"binary_data_output": True})
    return [
        (v2, body(inputs=[tensor("x", row)], outputs=[{"name": "double"}], id=id_), json_),
        (v2, body(inputs=[tensor("x", row)], outputs=[{"name": "total"}]), json_),
        (v2, body(inputs=[tensor("x", row)]), json_),
        (v2, binary, {**json_, "inference-header-content-length": length}),
        (v2, mixed, {**json_, "inference-header-content-length": mixed_length}),
        (v2, all_binary, {**json_, "inference-header-content-length": all_length}),
        (v1, orjson.dumps({"instances": row}), json_),
        (v1, orjson.dumps({"inputs": row}), json_),
        (v1, orjson.dumps({"inputs": {"x": row}}), json_),
    ]


def answer_of(response: httpx.Response) -> tuple[int, Any, bytes, str | None]:
    """What a client reads: status, the JSON (of the header part), the binary part, header
    length."""
    length = response.headers.get("inference-header-content-length")
    cut = int(length) if length is not None else len(response.content)
    return (
        response.status_code,
        orjson.loads(response.content[:cut]),
        response.content[cut:],
        length,
    )


def test_every_form_merges_and_each_answer_is_what_it_would_have_been_alone(
    plane: Plane, database: Database
) -> None:
    plane.log(Paced(), "paced", sample_input={"x": np.array([[0.1, 0.2]])})
    plane.client.create_deployment("paced")
    plane.wait_rollout("paced", ("succeeded",))
    keys = [plane.client.create_key(n, ["predict"], project="default").key for n in ("a", "b")]
    merging = Gateway(database, refresh_seconds=0.1)
    alone = Gateway(database, refresh_seconds=0.1, merge=False)
    with serve_gateway_app(merging) as url, serve_gateway_app(alone) as alone_url:
        for app in (merging, alone):
            until(
                lambda app=app: (
                    app.table.routes.get("paced") and app.table.routes["paced"].replicas
                ),
                10,
                "route",
            )
        got: dict[int, httpx.Response] = {}

        def send(index: int, call: Call) -> None:
            path, content, headers = call
            got[index] = httpx.post(url + path, content=content, headers=headers, timeout=60)

        def wave(values: list[float], extra: list[Call] = []) -> list[Call]:  # noqa: B006
            """A holder per form keeps its group busy for 2.5 s; then the calls go together.
            The first holders find nothing out and go at once, unparsed; the second find them
            out, so each goes as its group's call, and the calls wait for it."""
            got.clear()
            holders = forms(2.5, keys[0], "holder") + forms(2.5, keys[0], "holder-2")
            held = [threading.Thread(target=send, args=(-1 - i, c)) for i, c in enumerate(holders)]
            half = len(held) // 2
            for thread in held[:half]:
                thread.start()
            time.sleep(0.4)
            for thread in held[half:]:
                thread.start()
            time.sleep(0.6)
            calls = [
                call
                for index, value in enumerate(values)
                for call in forms(value, keys[index % 2], f"r{index}")
            ] + extra
            others = [threading.Thread(target=send, args=(i, c)) for i, c in enumerate(calls)]
            for thread in others:
                thread.start()
            for thread in [*held, *others]:
                thread.join(60)
            for index, (path, content, headers) in enumerate(calls):
                alone_answer = httpx.post(alone_url + path, content=content, headers=headers)
                assert answer_of(got[index]) == answer_of(alone_answer), (index, content[:200])
                assert got[index].headers["content-type"] == alone_answer.headers["content-type"]
            return calls

        calls = wave([0.1, 0.2, 0.3])
        assert all(got[i].status_code == 200 for i in range(len(calls)))
        by_form = dict(merging.merger.merged_by_form)
        assert by_form == {"v2": 3, "v2-binary": 3, "v1": 3}, "each form's groups merged"
        merged = merging.merger.merged_calls

        wrong_key = forms(0.6, "fnd_wrong", "w")[0]  # refused at the gateway, never merged
        calls = wave([0.1, -0.4, 0.3], [wrong_key])  # -0.4: a bad row in each form's batch
        statuses = [got[i].status_code for i in range(len(calls))]
        assert statuses[-1] == 401
        assert sorted(set(statuses[9:18])) == [500], "each form's bad row: the model's error, alone"
        assert statuses[:9] + statuses[18:27] == [200] * 18
        assert merging.merger.merged_calls == merged, "the spoiled batches went one by one"


def test_v1_requests_merge_only_with_rows_that_decode_alike() -> None:
    def key(doc: Any) -> Any:
        parsed = mergeable_v1(orjson.dumps(doc))
        return None if parsed is None else parsed[1]

    floats = key({"instances": [[1.5, 2.5]]})
    assert floats == key({"instances": [[0.5, 1.0], [2.0, 3.0]]})
    assert floats != key({"instances": [[1, 2]]}), "ints alone decode as int64: apart"
    assert floats != key({"inputs": [[1.5, 2.5]]}), "rows and columns apart"
    named = key({"instances": [{"a": 1.0, "b": "x"}]})
    assert named == key({"instances": [{"b": "y", "a": 2.0}]})
    assert named != key({"instances": [{"a": 1.0, "b": {"b64": "eA=="}}]})
    assert key({"inputs": {"a": [1.0, 2.0], "b": ["x", "y"]}}) is not None
    for alone in (
        {"instances": [[1.0, None]]},  # nulls
        {"instances": [[1.0, 2.0], [1.0]]},  # ragged
        {"instances": [[1.0], [2]]},  # rows that decode differently
        {"instances": []},
        {"instances": [[1.0]], "signature_name": "x"},
        {"inputs": {"a": [1.0], "b": [1.0, 2.0]}},  # columns of different lengths
        {"inputs": {}},
        [[1.0]],
    ):
        assert key(alone) is None, alone


def test_binary_requests_merge_only_when_their_bytes_cut_by_rows() -> None:
    raw, length = binary_body([[1.0, 2.0]], outputs=[{"name": "y"}])
    parsed = mergeable_binary(raw, length.encode())
    assert parsed is not None
    assert parsed[0].parts == (np.asarray([[1.0, 2.0]], dtype="<f8").tobytes(),)
    assert mergeable_binary(raw + b"x", length.encode()) is None, "bytes beyond the inputs"
    assert mergeable_binary(raw[:-1], length.encode()) is None, "too few bytes"
    assert mergeable_binary(raw, b"12x") is None
    assert mergeable_binary(raw, str(len(raw) + 1).encode()) is None
    text = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": 5},
                }
            ]
        }
    )
    assert mergeable_binary(text + b"\x01\0\0\0a", str(len(text)).encode()) is None, "BYTES"


def test_batches_that_are_full_go_at_once_and_big_requests_go_alone() -> None:
    """Requests too big to share a call never queue behind each other (they did: the group
    sent one batch at a time, so 40-row requests went one after another)."""
    out = 0
    most = 0

    async def send(payload: bytes, replaced: list[tuple[str, str]]) -> Answer:
        nonlocal out, most
        out += 1
        most = max(most, out)
        await asyncio.sleep(0.05)
        out -= 1
        doc = orjson.loads(payload)
        data = doc["inputs"][0]["data"]
        shape = doc["inputs"][0]["shape"]
        answer = {"outputs": [{"name": "y", "datatype": "FP64", "shape": shape, "data": data}]}
        return 200, [], orjson.dumps(answer), 1

    async def scenario() -> list[Answer]:
        merger = Merger()
        batch = requests(*([[float(i)]] * 40 for i in range(3)))
        return list(await asyncio.gather(*(merger.submit(("k",), r, send) for r in batch)))

    answers = asyncio.run(scenario())
    assert [orjson.loads(a[2])["outputs"][0]["shape"] for a in answers] == [[40, 1]] * 3
    assert most == 3, "each full batch went at once"
    rows_64 = [[0.5, 0.5]] * 64
    assert mergeable(body(inputs=[tensor("x", rows_64)])) is None
    assert mergeable_v1(orjson.dumps({"instances": rows_64})) is None
    assert mergeable_v1(orjson.dumps({"inputs": {"x": rows_64}})) is None


def test_big_binary_requests_merge_up_to_the_revisions_batch_size() -> None:
    """Binary tensors are joined and cut as bytes, so 64-row bodies merge too, as many as the
    revision's ``max_batch_size`` holds in one call; one with as many rows goes alone, at once."""
    calls: list[list[int]] = []

    own: dict[bytes, int] = {}  # a request sent alone keeps its own header length

    async def send(payload: bytes, replaced: list[tuple[str, str]]) -> Answer:
        header = dict(replaced).get("inference-header-content-length")
        length = int(header) if header else own[payload]
        doc = orjson.loads(payload[:length])
        rows = doc["inputs"][0]["shape"][0]
        calls.append([rows])
        await asyncio.sleep(0.02)
        data = np.frombuffer(payload[length:], dtype="<f8").reshape(rows, 2)
        out = np.ascontiguousarray(data[:, :1] * 2, dtype="<f8").tobytes()
        entry = {"name": "y", "datatype": "FP64", "shape": [rows, 1],
                 "parameters": {"binary_data_size": len(out)}}  # fmt: skip
        head = orjson.dumps({"outputs": [entry]})
        extra = [(b"inference-header-content-length", str(len(head)).encode())]
        return 200, extra, head + out, 1

    blocks = [[[float(i), 0.0]] * 64 for i in range(5)]
    bodies = [binary_body(block, outputs=[{"name": "y"}]) for block in blocks]
    parsed = [mergeable_binary(raw, length.encode()) for raw, length in bodies]
    own.update((raw, int(length)) for raw, length in bodies)
    assert all(p is not None and p[0].rows == 64 for p in parsed)

    async def scenario(limit: int) -> list[Answer]:
        merger = Merger()
        return list(
            await asyncio.gather(
                *(merger.submit(("k",), p[0], send, limit) for p in parsed if p is not None)
            )
        )

    answers = asyncio.run(scenario(128))
    assert sorted(rows for (rows,) in calls) == [64, 128, 128], "two merged calls, one alone"
    for index, (status, headers, payload, _) in enumerate(answers):
        length = int(dict(headers)[b"inference-header-content-length"])
        doc = orjson.loads(payload[:length])
        assert status == 200
        assert doc["outputs"][0]["shape"] == [64, 1]
        assert set(np.frombuffer(payload[length:], dtype="<f8")) == {2.0 * index}
    calls.clear()
    asyncio.run(scenario(64))
    assert calls == [[64]] * 5, "a request of the batch size goes alone, at once"


@pytest.mark.parametrize(("value", "merges"), [("0", False), ("false", False), ("1", True)])
def test_the_gateway_merge_setting_reaches_the_gateway(
    database: Database, monkeypatch: pytest.MonkeyPatch, value: str, merges: bool
) -> None:
    monkeypatch.setenv("FUNADE_GATEWAY_MERGE", value)
    assert gateway_app(load_settings(), database).merge is merges


def test_a_bad_gateway_merge_setting_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNADE_GATEWAY_MERGE", "sometimes")
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    assert "gateway_merge" in str(caught.value)
