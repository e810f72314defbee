from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from funade.artifacts.digest import sha256_file
from funade.errors import InvalidInputError
from funade.pipelines.serializers import (
    INLINE_LIMIT,
    Encoded,
    check_type,
    decode,
    encode,
    item_of,
)

WHERE = "pipeline 'training', step 'train', output 'model'"


class Point:
    """A plain class: stored as pickle."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


def _round_trip(value: Any, tmp_path: Path) -> tuple[Encoded, Any]:
    encoded = encode(value, tmp_path / "out", where=WHERE)
    return encoded, decode(encoded.kind, encoded.path, work_dir=tmp_path / "work")


def _check_stored(encoded: Encoded, dest: Path) -> None:
    assert encoded.path.parent == dest
    assert encoded.digest == sha256_file(encoded.path)
    assert encoded.path.name.startswith(encoded.digest.removeprefix("sha256:"))
    assert encoded.size == encoded.path.stat().st_size
    assert not [p for p in dest.iterdir() if p.name.startswith(".")], "a temp file was left"


# --- json -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        10**30,
        1.5,
        -0.0,
        1e-300,
        "",
        "héllo wörld ✓ 日本語 🎉",
        [],
        {},
        [1, "a", None, 2.5, True],
        {"b": [1, {"c": [None, {"d": "é"}]}], "a": {"x": []}},
    ],
)
def test_json_round_trips(value: Any, tmp_path: Path) -> None:
    encoded, back = _round_trip(value, tmp_path)
    assert encoded.kind == "json"
    assert back == value
    assert type(back) is type(value)
    assert encoded.value == value
    _check_stored(encoded, tmp_path / "out")


def test_json_bool_stays_bool_and_int_stays_int(tmp_path: Path) -> None:
    _, back = _round_trip({"flag": True, "count": 1, "ratio": 1.0}, tmp_path)
    assert back == {"flag": True, "count": 1, "ratio": 1.0}
    assert type(back["flag"]) is bool
    assert type(back["count"]) is int
    assert type(back["ratio"]) is float


def test_json_bytes_are_canonical(tmp_path: Path) -> None:
    encoded = encode({"b": 1, "a": ["é", 2.5]}, tmp_path, where=WHERE)
    assert encoded.path.read_bytes() == '{"a":["é",2.5],"b":1}'.encode()
    assert encoded.path.suffix == ".json"
    again = encode({"a": ["é", 2.5], "b": 1}, tmp_path, where=WHERE)
    assert again.digest == encoded.digest


def test_tuple_is_stored_as_a_json_list(tmp_path: Path) -> None:
    encoded, back = _round_trip((1, "two", (3.0,)), tmp_path)
    assert encoded.kind == "json"
    assert encoded.type_name == "builtins.tuple"
    assert encoded.length == 3
    assert back == [1, "two", [3.0]]


@pytest.mark.parametrize(
    "value", [float("nan"), [float("inf")], {1: "int key"}, {"a": b"bytes"}, {"s": {1, 2}}]
)
def test_values_that_do_not_round_trip_through_json_are_pickled(value: Any, tmp_path: Path) -> None:
    encoded, back = _round_trip(value, tmp_path)
    assert encoded.kind == "pickle"
    assert encoded.value is None
    if value == value:  # nan is not equal to itself
        assert back == value
    else:
        assert np.isnan(back)


def test_small_json_is_inline_and_large_json_is_not(tmp_path: Path) -> None:
    small = encode({"accuracy": 0.93, "labels": ["a", "b"]}, tmp_path, where=WHERE)
    assert small.value == {"accuracy": 0.93, "labels": ["a", "b"]}
    assert small.size <= INLINE_LIMIT

    exactly = encode("x" * (INLINE_LIMIT - 2), tmp_path, where=WHERE)  # two quotes
    assert exactly.size == INLINE_LIMIT
    assert exactly.value == "x" * (INLINE_LIMIT - 2)

    large_list = list(range(2000))
    large = encode(large_list, tmp_path, where=WHERE)
    assert large.kind == "json"
    assert large.size > INLINE_LIMIT
    assert large.value is None
    assert large.length == 2000
    assert decode("json", large.path, work_dir=tmp_path) == large_list


def test_inline_value_of_falsy_json_is_kept(tmp_path: Path) -> None:
    assert encode(0, tmp_path, where=WHERE).value == 0
    assert encode([], tmp_path, where=WHERE).value == []
    assert encode([], tmp_path, where=WHERE).length == 0
    assert encode(None, tmp_path, where=WHERE).value is None


def test_length_and_type_name(tmp_path: Path) -> None:
    assert encode([1, 2, 3], tmp_path, where=WHERE).length == 3
    assert encode({"a": 1}, tmp_path, where=WHERE).length is None
    assert encode(5, tmp_path, where=WHERE).length is None
    assert encode({"a": 1}, tmp_path, where=WHERE).type_name == "builtins.dict"
    assert encode(np.zeros((4, 2)), tmp_path, where=WHERE).length == 4
    assert encode(np.float64(2.0).reshape(()), tmp_path, where=WHERE).length is None


# --- numpy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.array([1.5, -2.25, 3.0], dtype=np.float32),
        np.array([1, -(2**62), 3], dtype=np.int64),
        np.array([True, False, True]),
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.arange(6, dtype=np.int16).reshape(2, 3).T,  # not C-contiguous
        np.array(["a", "ü"]),
        np.zeros((0, 3)),
        np.array(7),
    ],
)
def test_numpy_round_trips(array: np.ndarray[Any, Any], tmp_path: Path) -> None:
    encoded, back = _round_trip(array, tmp_path)
    assert encoded.kind == "numpy"
    assert encoded.type_name == "numpy.ndarray"
    assert encoded.path.suffix == ".npy"
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    _check_stored(encoded, tmp_path / "out")


def test_object_array_falls_back_to_pickle(tmp_path: Path) -> None:
    array = np.array([{"a": 1}, Point(1, 2), None], dtype=object)
    encoded, back = _round_trip(array, tmp_path)
    assert encoded.kind == "pickle"
    assert encoded.length == 3
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.dtype(object)
    assert list(back) == [{"a": 1}, Point(1, 2), None]
    assert item_of("pickle", encoded.path, 1, work_dir=tmp_path) == Point(1, 2)


# --- tables ---------------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.array([1, 2, 3], dtype=np.int64),
            "score": [0.5, np.nan, 2.25],
            "small": np.array([1.5, 2.5, 3.5], dtype=np.float32),
            "name": ["a", "ü", None],
            "flag": [True, False, True],
            "when": pd.to_datetime(["2024-01-01 00:00", "2024-02-29 12:30", "2024-12-31 23:59"]),
            "color": pd.Categorical(["red", "blue", "red"]),
            "maybe": pd.array([1, None, 3], dtype="Int64"),
        }
    )


def test_dataframe_round_trips_with_mixed_dtypes(tmp_path: Path) -> None:
    frame = _frame()
    encoded, back = _round_trip(frame, tmp_path)
    assert encoded.kind == "parquet"
    assert encoded.type_name == "pandas.core.frame.DataFrame"
    assert encoded.length == 3
    assert encoded.value is None
    pd.testing.assert_frame_equal(back, frame)
    _check_stored(encoded, tmp_path / "out")


def test_dataframe_with_an_index_round_trips(tmp_path: Path) -> None:
    frame = _frame().set_index("name")
    _, back = _round_trip(frame, tmp_path)
    pd.testing.assert_frame_equal(back, frame)


def test_dataframe_pyarrow_cannot_convert_is_pickled(tmp_path: Path) -> None:
    frame = pd.DataFrame({"mixed": [1, "a", 2.5]})
    encoded, back = _round_trip(frame, tmp_path)
    assert encoded.kind == "pickle"
    assert encoded.type_name == "pandas.core.frame.DataFrame"
    pd.testing.assert_frame_equal(back, frame)


def test_parquet_bytes_are_deterministic(tmp_path: Path) -> None:
    first = encode(_frame(), tmp_path / "one", where=WHERE)
    second = encode(_frame(), tmp_path / "two", where=WHERE)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.digest == second.digest


def test_pyarrow_table_round_trips(tmp_path: Path) -> None:
    table = pa.table(
        {
            "x": pa.array([1, 2, None], type=pa.int32()),
            "s": ["a", "b", "ç"],
            "l": [[1.0], [], [2.0, 3.0]],
        }
    )
    encoded, back = _round_trip(table, tmp_path)
    assert encoded.kind == "arrow"
    assert encoded.type_name == "pyarrow.lib.Table"
    assert encoded.length == 3
    assert isinstance(back, pa.Table)
    assert back.equals(table)
    assert pq.read_table(str(encoded.path)).equals(table)  # a plain Parquet file


# --- paths ----------------------------------------------------------------------------------


def test_file_round_trips(tmp_path: Path) -> None:
    source = tmp_path / "metrics.csv"
    source.write_bytes(b"a,b\n1,2\n" + os.urandom(100_000))
    encoded, back = _round_trip(source, tmp_path)
    assert encoded.kind == "file"
    assert encoded.type_name == "pathlib.PosixPath"
    assert encoded.path.suffix == ".csv"
    assert encoded.digest == sha256_file(source)
    assert isinstance(back, Path)
    assert back.is_relative_to(tmp_path / "work")
    assert back.suffix == ".csv"
    assert back.read_bytes() == source.read_bytes()
    _check_stored(encoded, tmp_path / "out")

    again = decode("file", encoded.path, work_dir=tmp_path / "work")
    assert again != back  # each decode gets its own copy, so a step may change it freely


def test_directory_round_trips_with_nested_files(tmp_path: Path) -> None:
    source = tmp_path / "model"
    (source / "weights" / "deep").mkdir(parents=True)
    (source / "empty").mkdir()
    (source / "config.json").write_text('{"layers": 3}')
    (source / "weights" / "layer.bin").write_bytes(os.urandom(50_000))
    (source / "weights" / "deep" / "ü.txt").write_text("nested")
    encoded, back = _round_trip(source, tmp_path)
    assert encoded.kind == "directory"
    assert encoded.path.suffix == ".tar"
    assert back.is_dir()
    assert back.is_relative_to(tmp_path / "work")
    assert (back / "config.json").read_text() == '{"layers": 3}'
    assert (back / "weights" / "layer.bin").read_bytes() == (
        source / "weights" / "layer.bin"
    ).read_bytes()
    assert (back / "weights" / "deep" / "ü.txt").read_text() == "nested"
    assert (back / "empty").is_dir()
    _check_stored(encoded, tmp_path / "out")


def test_directory_digest_ignores_times(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "a.txt").write_text("a")
    first = encode(source, tmp_path / "one", where=WHERE)
    os.utime(source / "a.txt", (1, 1))
    assert encode(source, tmp_path / "two", where=WHERE).digest == first.digest


def test_missing_path_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(InvalidInputError, match="not an existing file or directory") as info:
        encode(missing, tmp_path / "out", where=WHERE)
    assert WHERE in str(info.value)
    assert str(missing) in str(info.value)
    assert info.value.field == WHERE


# --- pickle ---------------------------------------------------------------------------------


def test_custom_class_is_pickled(tmp_path: Path) -> None:
    encoded, back = _round_trip(Point(3, 4), tmp_path)
    assert encoded.kind == "pickle"
    assert encoded.type_name == f"{__name__}.Point"
    assert encoded.path.suffix == ".pkl"
    assert back == Point(3, 4)
    _check_stored(encoded, tmp_path / "out")


def test_list_of_objects_is_pickled_with_a_length(tmp_path: Path) -> None:
    encoded, back = _round_trip([Point(1, 1), Point(2, 2)], tmp_path)
    assert encoded.kind == "pickle"
    assert encoded.length == 2
    assert back == [Point(1, 1), Point(2, 2)]
    assert item_of("pickle", encoded.path, 1, work_dir=tmp_path) == Point(2, 2)


def _numbers() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("value", "type_text"),
    [
        (lambda x: x, "builtins.function"),
        (_numbers(), "builtins.generator"),
        (threading.Lock(), "_thread.lock"),
        ([1, lambda: 2], "builtins.list"),
    ],
)
def test_unpicklable_values_are_refused(value: Any, type_text: str, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(InvalidInputError, match="cannot be stored") as info:
        encode(value, dest, where=WHERE)
    error = info.value
    assert WHERE in str(error)
    assert type_text in str(error)
    assert error.fix is not None
    assert "picklable object" in error.fix
    assert error.field == WHERE
    assert error.value == type_text
    assert list(dest.iterdir()) == [], "a partial file was left"


def test_open_file_is_refused(tmp_path: Path) -> None:
    with (
        (tmp_path / "f.txt").open("w") as handle,
        pytest.raises(InvalidInputError, match=r"_io\.TextIOWrapper, which cannot be stored"),
    ):
        encode(handle, tmp_path / "out", where=WHERE)


# --- determinism across processes -----------------------------------------------------------

_CHILD = """
import json, sys
from pathlib import Path
import numpy as np
import pandas as pd
from funade.pipelines.serializers import encode
dest = Path(sys.argv[1])
values = {
    "json": {"b": [1, 2.5, "é"], "a": None},
    "numpy": np.arange(10, dtype=np.float32).reshape(2, 5),
    "parquet": pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}),
    "pickle": {1, 2, 3},
}
print(json.dumps({k: encode(v, dest / k, where="w").digest for k, v in values.items()}))
"""


def test_same_value_gives_same_digest_in_a_fresh_process(tmp_path: Path) -> None:
    runs = [
        subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path / name)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        for name in ("one", "two")
    ]
    first, second = (json.loads(run.stdout) for run in runs)
    assert first == second
    here = {
        "json": encode({"a": None, "b": [1, 2.5, "é"]}, tmp_path / "here", where="w").digest,
        "numpy": encode(np.arange(10, dtype=np.float32).reshape(2, 5), tmp_path, where="w").digest,
        "parquet": encode(pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), tmp_path, where="w").digest,
    }
    assert here == {k: first[k] for k in here}


# --- item_of --------------------------------------------------------------------------------


def test_item_of_list_tuple_and_array(tmp_path: Path) -> None:
    work = tmp_path / "work"
    big = [{"i": i} for i in range(500)]
    stored = encode(big, tmp_path, where=WHERE)
    assert item_of("json", stored.path, 321, work_dir=work) == {"i": 321}

    stored = encode(("a", "b", "c"), tmp_path, where=WHERE)
    assert item_of("json", stored.path, 2, work_dir=work) == "c"

    vector = encode(np.array([1.5, 2.5, 3.5]), tmp_path, where=WHERE)
    assert item_of("numpy", vector.path, 1, work_dir=work) == 2.5

    matrix = np.arange(12, dtype=np.int64).reshape(3, 4)
    row = item_of("numpy", encode(matrix, tmp_path, where=WHERE).path, 2, work_dir=work)
    assert type(row) is np.ndarray
    np.testing.assert_array_equal(row, [8, 9, 10, 11])


def test_item_of_a_table_is_refused(tmp_path: Path) -> None:
    stored = encode(_frame(), tmp_path, where=WHERE)
    with pytest.raises(InvalidInputError, match="Fan-out over a table is not supported"):
        item_of(stored.kind, stored.path, 0, work_dir=tmp_path)


def test_item_of_out_of_range_or_not_a_list(tmp_path: Path) -> None:
    stored = encode([1, 2], tmp_path, where=WHERE)
    with pytest.raises(InvalidInputError, match=r"Element 2 is out of range .* length 2"):
        item_of("json", stored.path, 2, work_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="Element -1 is out of range"):
        item_of("json", stored.path, -1, work_dir=tmp_path)
    scalar = encode({"a": 1}, tmp_path, where=WHERE)
    with pytest.raises(InvalidInputError, match="not a list, tuple or array"):
        item_of("json", scalar.path, 0, work_dir=tmp_path)
    zero_d = encode(np.array(3.0), tmp_path, where=WHERE)
    with pytest.raises(InvalidInputError, match="not a list, tuple or array"):
        item_of("numpy", zero_d.path, 0, work_dir=tmp_path)


# --- unknown kinds --------------------------------------------------------------------------


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="'yaml' is not a kind of stored value") as info:
        decode("yaml", path, work_dir=tmp_path)
    assert info.value.field == "kind"
    assert info.value.value == "yaml"
    with pytest.raises(InvalidInputError, match="'yaml' value: it is not a list"):
        item_of("yaml", path, 0, work_dir=tmp_path)


# --- check_type -----------------------------------------------------------------------------

OUT = "pipeline 'training', step 'load', output 'rows'"


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        ("anything", inspect.Parameter.empty),
        (Point(1, 2), Any),
        (object(), object),
        (None, None),
        (None, type(None)),
        (3, int),
        (3, float),
        (3.5, float),
        (True, bool),
        ("s", str),
        (Point(1, 2), Point),
        (None, Optional[int]),  # noqa: UP045 -- the old spelling is what is tested
        (4, Optional[int]),  # noqa: UP045
        (None, int | None),
        ("x", Union[int, str]),  # noqa: UP007
        ([1, 2, 3], list[int]),
        ([], list[str]),
        ([[1], [2, 3]], list[list[int]]),
        ((1, 2, 3), tuple[int, ...]),
        ((1, "a"), tuple[int, str]),
        ({"a": 1.5, "b": 2}, dict[str, float]),
        ({"a": [1]}, dict[str, list[int]]),
        ("b", Literal["a", "b"]),
        ([1, 2], list),
        ({1, 2}, set[int]),
        (np.zeros(3), np.ndarray),
        (_frame(), pd.DataFrame),
        ([1, "a"], list[Any]),
        ([1, None], list[int | None]),
    ],
)
def test_check_type_accepts(value: Any, annotation: Any) -> None:
    check_type(value, annotation, where=OUT)


def test_check_type_accepts_unknown_constructs() -> None:
    from typing import TypeVar

    t = TypeVar("t")
    check_type("x", t, where=OUT)
    check_type("x", "int", where=OUT)  # string annotations are resolved by the caller


def test_check_type_checks_only_the_first_1000_elements() -> None:
    check_type([*range(1000), "late"], list[int], where=OUT)
    with pytest.raises(InvalidInputError, match=r"element \[999\] is str"):
        check_type([*range(999), "late"], list[int], where=OUT)


def _refused(value: Any, annotation: Any, where: str = OUT) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as info:
        check_type(value, annotation, where=where)
    return info.value


def test_check_type_mismatch_message() -> None:
    error = _refused("12", int)
    assert error.message == (
        "pipeline 'training', step 'load' returned str for output 'rows', which is declared int."
    )
    assert error.fix == "Return a value of type int, or change the step's return annotation."
    assert error.field == OUT
    assert error.value == "str"


def test_check_type_with_another_kind_of_where() -> None:
    error = _refused("12", int, where="pipeline 'training', step 'fit', input 'epochs'")
    assert error.message == (
        "pipeline 'training', step 'fit', input 'epochs' is str, which is declared int."
    )
    assert error.fix is not None
    assert "change the annotation" in error.fix


@pytest.mark.parametrize(
    ("value", "annotation", "got", "declared"),
    [
        (True, int, "bool", "int"),
        (False, float, "bool", "float"),
        (1.5, int, "float", "int"),
        (None, int, "None", "int"),
        (3, None, "int", "None"),
        ("x", Optional[int], "str", "Optional[int]"),  # noqa: UP045
        ("x", int | None, "str", "int | None"),
        (b"x", Union[int, str], "bytes", "Union[int, str]"),  # noqa: UP007
        ((1, 2), list[int], "tuple", "list[int]"),
        ({"a": 1}, list[int], "dict", "list[int]"),
        ("c", Literal["a", "b"], "str", "Literal['a', 'b']"),
        (1, Literal[True], "int", "Literal[True]"),
        ([1], Point, "list", "Point"),
        ((1, 2, 3), tuple[int, int], "tuple", "tuple[int, int]"),
        (np.int64(3), int, "int64", "int"),
    ],
)
def test_check_type_refuses(value: Any, annotation: Any, got: str, declared: str) -> None:
    error = _refused(value, annotation)
    assert error.message == (
        f"pipeline 'training', step 'load' returned {got} for output 'rows', "
        f"which is declared {declared}."
    )
    assert error.value == got
    assert error.fix == (
        f"Return a value of type {declared}, or change the step's return annotation."
    )


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        ([1, 2, "3"], list[int], "declared list[int]: element [2] is str, not int."),
        ([[1], [2, None]], list[list[int]], "element [1][1] is None, not int."),
        ((1, "a"), tuple[int, int], "declared tuple[int, int]: element [1] is str, not int."),
        ((1, 2, 3.5), tuple[int, ...], "element [2] is float, not int."),
        ({"a": 1.0, "b": "x"}, dict[str, float], "element ['b'] is str, not float."),
        ({1: 1.0}, dict[str, float], "element [1] (its key) is int, not str."),
        ([1, True], list[int] | None, "declared list[int] | None: element [1] is bool, not int."),
        ({"k": [1, "2"]}, dict[str, list[int]], "element ['k'][1] is str, not int."),
    ],
)
def test_check_type_names_the_wrong_element(value: Any, annotation: Any, expected: str) -> None:
    error = _refused(value, annotation)
    assert error.message.startswith("pipeline 'training', step 'load' returned ")
    assert error.message.endswith(expected)
