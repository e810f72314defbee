"""Merging at the gateway as an attacker would use it: a request built to spoil, read or
outgrow the batch it joins gets the answer it would have had alone, and the others theirs."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import orjson

from funade.gateway.app import Gateway
from funade.store import Database
from tests.deploy.conftest import Plane, plane, until  # noqa: F401 - the fixture
from tests.servers import serve_gateway_app
from tests.serving.models import Paced

V2 = "/v2/models/paced/infer"


def v2(value: float, **doc: object) -> bytes:
    x = {"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [value, value / 2]}
    return orjson.dumps({"inputs": [x], **doc})


def test_hostile_requests_in_a_merged_batch_spoil_nobody_elses_answer(
    plane: Plane,  # noqa: F811
    database: Database,
) -> None:
    plane.log(Paced(), "paced", sample_input={"x": np.array([[0.1, 0.2]])})
    plane.client.create_deployment("paced")
    plane.wait_rollout("paced", ("succeeded",))
    victim = plane.client.create_key("victim", ["predict"], project="default").key
    attacker = plane.client.create_key("attacker", ["predict"], project="default").key
    app = Gateway(database, refresh_seconds=0.1)
    raw = np.asarray([[0.3, 0.15]], dtype="<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP64",
                    "shape": [1, 2],
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    )
    hostile = [
        (v2(0.2, outputs=[{"name": "nope"}]), {}),  # an output the model has not
        (v2(-0.3), {}),  # a value the model refuses
        (v2(0.2, id="x" * 60_000), {}),  # an id that makes the merged body outgrow the limit
        (header + raw, {"inference-header-content-length": "-5"}),  # a header length that lies
        (header + raw, {"inference-header-content-length": str(len(header) + 8)}),
        (header + raw[:8], {"inference-header-content-length": str(len(header))}),  # short
        (b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": "AAAA"}]}', {}),
    ]
    with serve_gateway_app(app) as url:
        until(
            lambda: app.table.routes.get("paced") and app.table.routes["paced"].replicas,
            10,
            "route",
        )
        got: dict[str, httpx.Response] = {}

        def send(name: str, body: bytes, key: str, headers: dict[str, str]) -> None:
            all_headers = {"x-api-key": key, "content-type": "application/json", **headers}
            got[name] = httpx.post(url + V2, content=body, headers=all_headers, timeout=60)

        holder = threading.Thread(target=send, args=("holder", v2(1.5), victim, {}))
        holder.start()
        time.sleep(0.5)  # the holder keeps the group busy: what follows queues and merges
        threads = [
            threading.Thread(target=send, args=(f"victim{i}", v2(0.1 * (i + 1)), victim, {}))
            for i in range(3)
        ] + [
            threading.Thread(target=send, args=(f"hostile{i}", body, attacker, headers))
            for i, (body, headers) in enumerate(hostile)
        ]
        for thread in threads:
            thread.start()
        for thread in [holder, *threads]:
            thread.join(60)
    for i in range(3):
        answer = got[f"victim{i}"]
        assert answer.status_code == 200, answer.text
        double = answer.json()["outputs"][0]
        value = 0.1 * (i + 1)
        assert double["data"] == [value * 2, value]  # its own rows, nobody else's
        assert "id" not in answer.json()
    big_id = got["hostile2"]
    assert big_id.status_code == 200, big_id.text[:300]
    assert big_id.json()["id"] == "x" * 60_000
    assert big_id.json()["outputs"][0]["data"] == [0.4, 0.2]
    for i in (0, 1, 3, 4, 5, 6):
        answer = got[f"hostile{i}"]
        assert 400 <= answer.status_code < 600, (i, answer.text[:300])
        assert answer.status_code != 502, (i, answer.text[:300])
        assert "error" in answer.json(), (i, answer.text[:300])
    assert got["hostile1"].status_code == 500  # the model's own refusal, as alone
    assert "negative values are not allowed" in got["hostile1"].text
