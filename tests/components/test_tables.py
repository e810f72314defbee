"""read_table, read_query and split_table as plain functions (outside a pipeline a step is
one), each refusal naming the field; and read_query in a run, its URL given as a secret."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from funade.components import read_query, read_table, split_table
from funade.errors import InvalidInputError
from tests.conftest import Result

FRAME = pd.DataFrame({"x": range(20), "label": [0] * 15 + [1] * 5})


def test_read_table_reads_csv_and_parquet_by_suffix_or_format(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "t.csv", index=False)
    FRAME.to_parquet(tmp_path / "t.pq")
    FRAME.to_csv(tmp_path / "t.txt", index=False)
    for name, given in (("t.csv", ""), ("t.pq", ""), ("t.txt", "csv")):
        pd.testing.assert_frame_equal(read_table(str(tmp_path / name), given), FRAME)


def test_read_table_refuses_an_unknown_format_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="neither a CSV nor a Parquet file") as caught:
        read_table(str(tmp_path / "t.xlsx"))
    assert (caught.value.field, caught.value.value) == ("path", str(tmp_path / "t.xlsx"))
    with pytest.raises(InvalidInputError, match="is neither") as caught:
        read_table(str(tmp_path / "t.csv"), "excel")
    assert caught.value.field == "file_format"
    with pytest.raises(InvalidInputError, match="there is no file") as caught:
        read_table(str(tmp_path / "absent.csv"))
    assert caught.value.field == "path"


def _database(tmp_path: Path) -> str:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as connection:
        FRAME.to_sql("customers", connection, index=False)
    return f"sqlite:///{path}"


def test_read_query_reads_the_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNADE_TABLE_URL", _database(tmp_path))
    rows = read_query("SELECT x FROM customers WHERE label = 1")
    assert rows["x"].tolist() == [15, 16, 17, 18, 19]


def test_read_query_refuses_a_missing_or_unreadable_url_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(
        InvalidInputError, match=r"variable WAREHOUSE \(the database.s URL\) is not set"
    ) as caught:
        read_query("SELECT 1", "WAREHOUSE")
    assert caught.value.field == "url_env"
    monkeypatch.setenv("WAREHOUSE", "nodb://admin:hunter2@host/x")
    with pytest.raises(InvalidInputError, match="does not hold a database URL") as caught:
        read_query("SELECT 1", "WAREHOUSE")
    assert "hunter2" not in str(caught.value) + repr(caught.value.value)


def test_split_table_is_seeded_and_stratifies() -> None:
    first, again = split_table(FRAME, 0.2, seed=1), split_table(FRAME, 0.2, seed=1)
    pd.testing.assert_frame_equal(first.test, again.test)
    assert len(first.test) == 4
    assert len(first.train) + len(first.test) == len(FRAME)
    assert not set(first.train.index) & set(first.test.index)
    stratified = split_table(FRAME, 0.2, seed=0, stratify="label")
    assert stratified.test["label"].tolist().count(1) == 1  # 20% of each class


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"test_fraction": 1.0}, "test_fraction", "test_fraction 1.0 is not between 0 and 1"),
        ({"stratify": "nope"}, "stratify", "names the column 'nope', which the table"),
    ],
)
def test_split_table_refuses_bad_arguments(
    kwargs: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        split_table(FRAME, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_read_query_in_a_run_gets_its_url_as_a_secret(
    cli: Callable[..., Result],
    write_pipeline: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", _database(tmp_path))
    target = write_pipeline(
        """
        from funade.components import read_query, split_table

        reader = read_query.with_options(secrets={"FUNADE_TABLE_URL": "env:WAREHOUSE_URL"})


        @funade.pipeline
        def flow(query: str = "SELECT * FROM customers") -> None:
            split_table(reader(query), 0.5)
        """
    )
    result = cli("pipeline", "run", target, "--no-logs", "--json")
    assert result.code == 0, result.out + result.err
    run = json.loads(cli("runs", "show", "1", "--json").out)
    steps = {s["instance"]: s for s in run["steps"]}
    assert steps["read_query"]["outputs"]["output"]["length"] == 20
    assert steps["split_table"]["outputs"]["test"]["length"] == 10
    assert tmp_path.as_posix() not in json.dumps(run["params"])  # the URL is not a parameter
