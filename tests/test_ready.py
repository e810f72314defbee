"""The first call `funade deploy` prints (``funade.ready``): its example request, built from a
version's signature and first golden example, and the curl lines around it."""

from __future__ import annotations

import json
import shlex

from funade.ready import ReadyCall, curl, example_requests

TABLE = {
    "input_format": "columns",
    "inputs": [
        {"name": "tenure", "datatype": "FP64", "shape": [-1]},
        {"name": "plan", "datatype": "BYTES", "shape": [-1]},
    ],
}
GOLDEN_TABLE = [
    {
        "inputs": [
            {"name": "tenure", "datatype": "FP64", "shape": [2], "data": [3.0, 40.0]},
            {"name": "plan", "datatype": "BYTES", "shape": [2], "data": ["it's basic", "pro"]},
        ],
        "outputs": [],
    }
]


def test_a_table_gives_its_first_row_by_column_name() -> None:
    v1, v2 = example_requests(TABLE, GOLDEN_TABLE)
    assert v1 == {"instances": [{"tenure": 3.0, "plan": "it's basic"}]}
    assert v2 == {
        "inputs": [
            {"name": "tenure", "datatype": "FP64", "shape": [1], "data": [3.0]},
            {"name": "plan", "datatype": "BYTES", "shape": [1], "data": ["it's basic"]},
        ]
    }


def test_one_tensor_gives_its_first_row_in_its_shape() -> None:
    signature = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 2, 3]}]}
    golden = [
        {
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [2, 2, 3], "data": list(range(12))}
            ]
        }
    ]
    v1, v2 = example_requests(signature, golden)
    assert v1 == {"instances": [[[0, 1, 2], [3, 4, 5]]]}
    assert v2["inputs"] == [
        {"name": "image", "datatype": "FP32", "shape": [1, 2, 3], "data": [0, 1, 2, 3, 4, 5]}
    ]


def test_without_golden_examples_the_signature_gives_placeholder_values() -> None:
    signature = {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [-1, 2]},
            {"name": "word", "datatype": "BYTES", "shape": [-1]},
            {"name": "flag", "datatype": "BOOL", "shape": [-1]},
        ]
    }
    v1, v2 = example_requests(signature, None)
    assert v1 == {"instances": [{"x": [0, 0], "word": "", "flag": False}]}
    assert [t["shape"] for t in v2["inputs"]] == [[1, 2], [1], [1]]


def test_a_one_column_table_keeps_its_column_name() -> None:
    signature = {"input_format": "columns", "inputs": [TABLE["inputs"][0]]}
    v1, _ = example_requests(signature, GOLDEN_TABLE)
    assert v1 == {"instances": [{"tenure": 3.0}]}


def test_the_curl_lines_survive_a_shell() -> None:
    v1, v2 = example_requests(TABLE, GOLDEN_TABLE)
    call = ReadyCall("churn", "churn:3", "http://gw:8480", v1, v2, key="fnd_abc_def")
    first, second = call.curls()
    words = shlex.split(first)
    assert words[-1] == "http://gw:8480/v1/models/churn:predict"
    assert words[words.index("-H") + 1] == "Authorization: Bearer fnd_abc_def"
    assert json.loads(words[words.index("-d") + 1]) == v1  # the quote in "it's" survives
    assert shlex.split(second)[-1] == "http://gw:8480/v2/models/churn/infer"
    assert call.endpoint == "http://gw:8480/v2/models/churn/infer"
    assert call.example == v2


def test_without_a_key_the_curl_reads_one_from_the_environment() -> None:
    line = curl("http://gw/v2/models/m/infer", {"inputs": []}, "$FUNADE_PREDICT_KEY")
    assert '-H "Authorization: Bearer $FUNADE_PREDICT_KEY"' in line
    public = curl("http://gw/v2/models/m/infer", {"inputs": []}, None)
    assert "Authorization" not in public
