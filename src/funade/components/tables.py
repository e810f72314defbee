"""Tables in: a file (CSV or Parquet) or a SQL query, and a seeded train/test split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pandas as pd

import funade
from funade.errors import InvalidInputError

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class Split(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame


@funade.step(cache=False)  # the cache key would hold the path, not the file's content
def read_table(path: str, file_format: str = "") -> pd.DataFrame:
    """The table in the file at ``path``: CSV or Parquet, by its suffix or ``file_format``."""
    kind = file_format or _FORMATS.get(Path(path).suffix.lower(), "")
    if kind not in ("csv", "parquet"):
        raise InvalidInputError(
            f"read_table: {path!r} is neither a CSV nor a Parquet file by its name "
            f"(file_format {file_format!r}).",
            field="file_format" if file_format else "path",
            value=file_format or path,
            fix="Name the file .csv, .parquet or .pq, or pass file_format='csv' or 'parquet'.",
        )
    if not Path(path).is_file():
        raise InvalidInputError(
            f"read_table: there is no file {path!r} (the step runs in {os.getcwd()}).",
            field="path",
            value=path,
            fix="Pass an absolute path, or one relative to where the pipeline runs.",
        )
    frame = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    print(f"read {len(frame)} rows, {len(frame.columns)} columns from {path}")
    return frame


@funade.step(cache=False)  # the database changes without the query changing
def read_query(query: str, url_env: str = "FUNADE_TABLE_URL") -> pd.DataFrame:
    """The rows of ``query`` on the database whose SQLAlchemy URL is in the environment
    variable ``url_env``: give it as a secret, never as a parameter (``secrets=
    {"FUNADE_TABLE_URL": "env:WAREHOUSE_URL"}``, or ``k8s:SECRET/KEY`` on KFP)."""
    import sqlalchemy as sa

    url = os.environ.get(url_env, "")
    if not url:
        raise InvalidInputError(
            f"read_query: the environment variable {url_env} (the database's URL) is not set.",
            field="url_env",
            value=url_env,
            fix=f"Give the step the secret: read_query.with_options(secrets={{{url_env!r}: "
            "'env:WAREHOUSE_URL'}), or steps: {read_query: {secrets: ...}} in funade.yaml.",
        )
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise InvalidInputError(
            f"read_query: {url_env} does not hold a database URL SQLAlchemy can use "
            f"({type(exc).__name__}).",  # the URL may hold a password: not repeated here
            field="url_env",
            value=url_env,
            fix="Set it to a URL such as postgresql+psycopg://user@host/db.",
        ) from None
    try:
        with engine.connect() as connection:
            frame = pd.read_sql_query(sa.text(query), connection)
    finally:
        engine.dispose()
    print(f"read {len(frame)} rows, {len(frame.columns)} columns")
    return frame


@funade.step
def split_table(
    data: pd.DataFrame, test_fraction: float = 0.25, seed: int = 0, stratify: str = ""
) -> Split:
    """A seeded random split into train and test rows; ``stratify`` names a column whose
    classes keep their shares in both."""
    if not 0 < test_fraction < 1:
        raise InvalidInputError(
            f"split_table: test_fraction {test_fraction!r} is not between 0 and 1.",
            field="test_fraction",
            value=test_fraction,
            fix="Pass the share of rows to hold out, e.g. 0.25.",
        )
    if stratify and stratify not in data.columns:
        raise InvalidInputError(
            f"split_table: stratify names the column {stratify!r}, which the table does not "
            f"have (it has {', '.join(map(str, data.columns[:10]))}).",
            field="stratify",
            value=stratify,
            fix="Name one of the table's columns, or leave stratify empty.",
        )
    if stratify:
        test = data.groupby(stratify, group_keys=False).sample(
            frac=test_fraction, random_state=seed
        )
    else:
        test = data.sample(frac=test_fraction, random_state=seed)
    return Split(data.drop(test.index), test)
