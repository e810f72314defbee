"""Setup for the listing benchmark (not measured): a fresh PostgreSQL schema, many fake
versions of one model added through the registry service, and the planner's statistics."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from funade.projects import get_project
from funade.registry import service as registry
from funade.store import Database


def fake_version(rng: random.Random, i: int) -> registry.NewVersion:
    """A version like log_model makes: metrics on 9 in 10, a ``branch`` tag on 2 in 3."""
    inputs = [{"name": f"f{k}", "datatype": "FP64", "shape": [-1, 1]} for k in range(8)]
    files = {
        name: {"size": rng.randrange(10**6), "sha256": f"sha256:{rng.randbytes(32).hex()}"}
        for name in ("model.skops", "golden.json", "requirements.txt")
    }
    manifest = {
        "format_version": 1,
        "flavor": "sklearn",
        "flavor_metadata": {"format": "skops", "estimator": "LogisticRegression"},
        "signature": {
            "inputs": inputs,
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
        },
        "files": files,
        "python_version": "3.11.7",
        "requirements": {"scikit-learn": "1.5.2", "numpy": "2.1.3", "skops": "0.10.0"},
    }
    return registry.NewVersion(
        artifact_digest=f"sha256:{rng.randbytes(32).hex()}",
        artifact_size=rng.randrange(10**7),
        manifest=manifest,
        golden_examples=[],
        lineage={"git": {"commit": rng.randbytes(20).hex(), "branch": "main", "dirty": False}},
        params={"C": rng.choice([0.1, 1.0, 10.0]), "max_iter": 100},
        metrics={} if i % 10 == 0 else {"auc": rng.uniform(0.5, 1.0), "loss": rng.random()},
        tags={0: {"branch": "main"}, 1: {"branch": "dev", "owner": "ana"}, 2: {}}[i % 3],
        description=f"nightly retrain {i}",
    )


def populate(db: Database, model: str, count: int, batch: int = 500) -> float:
    """Add ``count`` versions of ``model``, ``batch`` per transaction; returns the seconds."""
    rng, start = random.Random(0), time.perf_counter()
    for first in range(0, count, batch):
        with db.session() as session:
            project = get_project(session, "default")
            for i in range(first, min(count, first + batch)):
                registry.create_version(
                    session, project, model, fake_version(rng, i), created_by=None
                )
    return time.perf_counter() - start


@contextmanager
def fresh_schema(base_url: str) -> Iterator[str]:
    """A new schema in the PostgreSQL at ``base_url``, dropped at the end; yields its URL."""
    schema = f"funade_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


TABLES = ("models", "model_versions", "version_tags", "version_metrics")


def set_statistics(db: Database, *, analyze: bool) -> None:
    """PostgreSQL: ``ANALYZE`` the registry's tables (run after seeding: what autovacuum does
    within a minute or so of a bulk load), or, with ``analyze=False`` (run before seeding),
    turn autovacuum off for them so that they stay without statistics for the whole run."""
    if db.is_sqlite:
        return
    with db.engine.begin() as connection:
        for table in TABLES:
            if analyze:
                connection.execute(text(f"ANALYZE {table}"))
            else:
                connection.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
