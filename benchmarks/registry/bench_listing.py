"""Listing latency with many versions: is a page as fast at the end as at the start?

    .venv/bin/python -m benchmarks.registry.bench_listing --versions 10000
    .venv/bin/python -m benchmarks.registry.bench_listing --versions 10000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Setup (not measured): a temporary FUNADE_HOME whose store (SQLite in the home, or a fresh
schema in ``--database-url``, dropped at the end) is migrated and bootstrapped, then holds
``--versions`` versions of one model, added with ``registry.service.create_version`` in
batched transactions (``seed.py``): each has a ~1.1 kB manifest, 9 in 10 an ``auc`` metric,
2 in 3 a ``branch`` tag. PostgreSQL then gets ``ANALYZE`` (as from autovacuum, soon after a
bulk load); ``--no-analyze`` keeps it without statistics (autovacuum off for those tables).
Then ``python -m funade up --port 0`` starts on that home.

Measured, ``--repeats`` times each, interleaved so that noise falls on all alike: the first,
middle and last page (reached by following ``next_cursor``) of

* all versions at limit 50 and at limit 500;
* ``metric auc>0.9`` and ``tag branch=main`` (about 1 in 16 versions) at limit 50;

each three ways: over HTTP with ``Client.list_versions`` (what users see), in-process through
``registry.list_versions`` and the API's ``version_out`` (no HTTP), and the floor: the same
keyset SQL run directly on the engine. Also ``GET /api/v1/projects/default/models``.
Keyset pagination should make the latency flat across page positions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Select, exists, select

from benchmarks.registry.harness import (
    Server,
    Stats,
    isolate,
    machine,
    server_stack,
    table,
    write_section,
)
from benchmarks.registry.seed import fresh_schema, populate, set_statistics
from funade import Client
from funade.api.convert import version_out
from funade.bootstrap import bootstrap
from funade.pagination import decode_cursor
from funade.projects import get_project
from funade.registry import service as registry
from funade.settings import load_settings
from funade.store import Database, create_database, upgrade
from funade.store.schema import Model, ModelVersion, VersionMetric, VersionTag

MODEL = "churn"
TAGS, METRICS = ["branch=main"], ["auc>0.9"]
CASES: list[tuple[str, int, bool]] = [  # label, limit, filtered
    ("all, limit 50", 50, False),
    ("all, limit 500", 500, False),
    ("auc>0.9 & branch=main, limit 50", 50, True),
]


@dataclass(frozen=True)
class Point:
    """One page to time: which listing, and where in it."""

    label: str
    limit: int
    filtered: bool
    page: str
    cursor: str | None


def filters(filtered: bool) -> tuple[list[str] | None, list[str] | None]:
    """The ``tags`` and ``metrics`` arguments of a listing."""
    return (TAGS, METRICS) if filtered else (None, None)


def keyset_sql(model_id: int, point: Point) -> Select[Any]:
    """The query registry.list_versions issues for one page, written out in Core."""
    mv = ModelVersion.__table__.c
    stmt = select(ModelVersion.__table__).where(mv.model_id == model_id)
    position = decode_cursor(point.cursor)
    if position is not None:
        stmt = stmt.where(mv.number < int(position["number"]))
    if point.filtered:
        tag, metric = VersionTag.__table__.c, VersionMetric.__table__.c
        stmt = stmt.where(
            exists().where(tag.version_id == mv.id, tag.key == "branch", tag.value == "main"),
            exists().where(metric.version_id == mv.id, metric.key == "auc", metric.value > 0.9),
        )
    return stmt.order_by(mv.number.desc()).limit(point.limit + 1)


def find_pages(client: Client, label: str, limit: int, filtered: bool) -> tuple[list[Point], str]:
    """Follow the cursors through one listing; its first, middle and last page."""
    cursors: list[str | None] = [None]
    tags, metrics = filters(filtered)
    start = time.perf_counter()
    while True:
        page = client.list_versions(
            MODEL, limit=limit, cursor=cursors[-1], tags=tags, metrics=metrics
        )
        if page.next_cursor is None:
            break
        cursors.append(page.next_cursor)
    note = f"{label}: {len(cursors)} pages, walked over HTTP in {time.perf_counter() - start:.2f} s"
    n = len(cursors)
    return [
        Point(label, limit, filtered, f"{name} ({i + 1} of {n})", cursors[i])
        for name, i in (("first", 0), ("middle", n // 2), ("last", n - 1))
    ], note


def timer(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def measure(db: Database, client: Client, repeats: int) -> tuple[list[list[str]], list[str]]:
    with db.read() as session:
        project = get_project(session, "default")
        model = registry.get_model(session, project, MODEL)

    def http(point: Point) -> None:
        tags, metrics = filters(point.filtered)
        client.list_versions(
            MODEL, limit=point.limit, cursor=point.cursor, tags=tags, metrics=metrics
        )

    def in_process(point: Point) -> None:  # what the route does, minus HTTP and JSON
        tags, metrics = filters(point.filtered)
        with db.read() as session:
            rows, _ = registry.list_versions(
                session, model, limit=point.limit, cursor=point.cursor, tags=tags, metrics=metrics
            )
            aliases = registry.aliases_by_version(session, model)
            for version in rows:
                version_out(version, project, aliases.get(version.id, []))

    def floor(point: Point) -> None:
        with db.engine.connect() as connection:
            connection.execute(keyset_sql(model.id, point)).all()

    ways: dict[str, Callable[[Point], None]] = {"http": http, "in": in_process, "sql": floor}
    points: list[Point] = []
    notes: list[str] = []
    for label, limit, filtered in CASES:
        found, note = find_pages(client, label, limit, filtered)
        points += found
        notes.append(note)

    samples: dict[tuple[int, str], list[float]] = {}
    for _ in range(repeats):  # interleaved: a noisy second slows every cell a little
        for n, point in enumerate(points):
            for way, run in ways.items():
                samples.setdefault((n, way), []).append(timer(partial(run, point)))
        samples.setdefault((-1, "http"), []).append(timer(client.list_models))
        samples.setdefault((-1, "sql"), []).append(timer(partial(models_sql, db)))

    def row(label: str, page: str, n: int, first: int) -> list[str]:
        h, s = Stats(samples[(n, "http")]), Stats(samples[(n, "sql")])
        inner = f"{Stats(samples[(n, 'in')]).median:.1f}" if (n, "in") in samples else ""
        return [
            label,
            page,
            f"{h.median:.1f} / {h.p95:.1f}",
            inner,
            f"{s.median:.2f} / {s.p95:.2f}",
            f"{h.median / s.median:.1f}x",
            f"{h.median / Stats(samples[(first, 'http')]).median:.2f}",
        ]

    rows = [row(p.label, p.page, n, n - n % 3) for n, p in enumerate(points)]
    rows.append(row("GET .../models (1 model)", "first (1 of 1)", -1, -1))
    return rows, notes


def models_sql(db: Database) -> None:
    with db.engine.connect() as connection:
        connection.execute(select(Model.__table__).order_by(Model.name).limit(51)).all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--database-url", help="run on this PostgreSQL (in a fresh schema)")
    parser.add_argument(
        "--no-analyze", action="store_true", help="PostgreSQL: measure without statistics"
    )
    parser.add_argument("--no-results", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="funade-bench-") as tmp, ExitStack() as stack:
        home = Path(tmp)
        isolate(home)
        url = f"sqlite:///{home / 'funade.db'}"
        if args.database_url:
            url = stack.enter_context(fresh_schema(args.database_url))
        db = create_database(url)
        stack.callback(db.dispose)  # before the schema is dropped
        upgrade(db)
        bootstrap(load_settings(home=home, database_url=url), db)
        print(f"adding {args.versions} versions to {db.url} ...", flush=True)
        if args.no_analyze:
            set_statistics(db, analyze=False)
        seconds = populate(db, MODEL, args.versions)
        if not args.no_analyze:
            set_statistics(db, analyze=True)
        print(f"... in {seconds:.1f} s; measuring ...", flush=True)
        with (
            Server(home, {"FUNADE_DATABASE_URL": url}) as server,
            Client(url=server.url, api_key=server.api_key) as client,
        ):
            rows, notes = measure(db, client, args.repeats)

    dialect = db.engine.dialect.name
    stats = "none, autovacuum off" if args.no_analyze else "ANALYZE after seeding"
    header = ["listing", "page", "HTTP ms", "in-process ms", "SQL ms", "HTTP/SQL", "HTTP/first"]
    body = (
        f"{machine()}\n\n"
        f"`.venv/bin/python -m benchmarks.registry.bench_listing {' '.join(sys.argv[1:])}`\n\n"
        f"{args.versions} versions of one model on {dialect}"
        + (f" (planner statistics: {stats})" if dialect != "sqlite" else "")
        + f", set up in {seconds:.1f} s; "
        + "; ".join(notes)
        + f".\n\nTimes in ms, median / p95 of {args.repeats} interleaved repeats (in-process: "
        "median); the last two columns are ratios of medians.\n\n"
        f"{table(header, rows)}\n"
    )
    print("\n" + body)
    if not args.no_results:
        key = f"listing-{dialect}-{args.versions}{'-no-analyze' if args.no_analyze else ''}"
        http = server_stack()
        title = f"Listing: {dialect}{', no statistics' if args.no_analyze else ''}, {http}"
        write_section(f"{key}-{http}", title, body)


if __name__ == "__main__":
    main()
