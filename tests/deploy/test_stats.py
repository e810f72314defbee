"""Traffic figures: windows counted by gateways, written to the store and read back summed."""

from __future__ import annotations

import math

from sqlalchemy import select

from funade.deploy.stats import BOUNDS_MS, WINDOW, Recorder, percentile, read_figures
from funade.projects import get_project
from funade.store import Database
from funade.store.schema import Deployment, Model, TrafficStat


def _deployment(database: Database) -> int:
    with database.session() as session:
        project = get_project(session, "default")
        model = Model(project_id=project.id, name="calc")
        session.add(model)
        session.flush()
        row = Deployment(project_id=project.id, name="calc", model_id=model.id)
        session.add(row)
        session.flush()
        return row.id


def test_percentiles_are_bucket_upper_bounds() -> None:
    buckets = [0] * (len(BOUNDS_MS) + 1)
    assert percentile(buckets, 0.99) is None
    buckets[BOUNDS_MS.index(5)] = 98
    buckets[BOUNDS_MS.index(100)] = 2
    assert percentile(buckets, 0.5) == 5.0
    assert percentile(buckets, 0.99) == 100.0
    buckets[-1] = 10
    assert percentile(buckets, 0.99) == math.inf


def test_gateways_windows_add_up_and_old_windows_are_left_out(
    database: Database, admin_key: str
) -> None:
    deployment = _deployment(database)
    first, second = Recorder("gw-a"), Recorder("gw-b")
    now = 1000.0 * WINDOW
    for recorder in (first, second):
        recorder.record(deployment, 1, 0.004, error=False, now=now)
        recorder.record(deployment, 1, 0.090, error=True, now=now + 1)
        recorder.record(deployment, 2, 0.001, error=False, now=now - 3 * WINDOW)
        recorder.flush(database, now + 1)
    first.record(deployment, 1, 0.004, error=False, now=now + 2)
    first.flush(database, now + 2)  # the same window again: replaced, not added twice
    with database.read() as session:
        figures = read_figures(session, deployment, since=now)
        assert len(list(session.scalars(select(TrafficStat)))) == 4
        older = read_figures(session, deployment, since=now - 3 * WINDOW)
    assert list(figures) == [1]
    assert (figures[1].requests, figures[1].errors) == (5, 2)
    assert figures[1].p50_ms == 5.0
    assert figures[1].p99_ms == 100.0
    assert older[2].requests == 2


def test_rows_that_could_not_be_written_go_out_with_the_next_take(
    database: Database, admin_key: str
) -> None:
    deployment = _deployment(database)
    recorder = Recorder("gw")
    now = 2000.0 * WINDOW
    recorder.record(deployment, 1, 0.004, error=False, now=now)
    rows = recorder.take(now)
    assert [r.requests for r in rows] == [1]
    assert recorder.take(now) == [], "nothing changed since"
    recorder.again(rows)  # as if the store had been away
    later = now + 10 * WINDOW
    [again] = recorder.take(later)
    assert again.requests == 1, "kept although its window closed long ago"
    assert recorder.take(later + WINDOW) == []
