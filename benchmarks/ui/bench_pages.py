"""Dashboard page times with 1,000 versions and 1,000 runs in the store (issue 6: < 300 ms).

    .venv/bin/python -m benchmarks.ui.bench_pages
    .venv/bin/python -m benchmarks.ui.bench_pages --versions 1000 --runs 1000 --repeats 30

Setup (not measured): a temporary FUNADE_HOME on SQLite, migrated and bootstrapped, holding
``--versions`` versions of the model ``churn`` (``benchmarks/registry/seed.py``: ~1.1 kB
manifests, metrics, tags, git lineage) and ``--runs`` finished runs of a 5-step pipeline
(a spec compiled from ``PIPELINE`` below, with a record for each step). Then
``python -m funade up --port 0`` serves it, as a user runs it, and a client signs in to the
dashboard with the admin key (``POST /signin``), keeping the session cookie.

Measured: ``GET`` of each page, whole (server time + transfer, over loopback, by one client),
``--repeats`` times, pages interleaved so that noise falls on all alike; median and p95.
Beside each page, the floor: the REST call (JSON) that fetches the same main data, timed the
same way — the page's cost over the API it is built on is the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

import funade
from benchmarks.registry.seed import populate
from funade.api.schemas import RunEventsIn, RunIn, RunUpdate, StepRecord
from funade.bootstrap import bootstrap, open_database
from funade.pipelines import records
from funade.projects import get_project
from funade.settings import Settings

TARGET_MS = 300.0


@funade.step
def load(rows: int) -> int:
    return rows


@funade.step
def clean(data: int) -> int:
    return data


@funade.step
def features(data: int) -> int:
    return data


@funade.step
def train(data: int, c: float) -> float:
    return float(data) * c


@funade.step
def evaluate(model: float, data: int) -> float:
    return model


@funade.pipeline
def PIPELINE(rows: int = 1000, c: float = 1.0) -> None:
    data = clean(load(rows))
    feats = features(data)
    evaluate(train(feats, c), data)


def seed_runs(settings: Settings, count: int) -> int:
    """``count`` finished runs of PIPELINE; returns the id of the last."""
    spec = PIPELINE.compile(source="bench.py").model_dump()
    nodes = [n["id"] for n in spec["nodes"]]
    db = open_database(settings, migrate=False)
    rng = random.Random(0)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    last = 0
    for first in range(0, count, 250):
        with db.session() as session:
            project = get_project(session, "default")
            for i in range(first, min(count, first + 250)):
                run = records.create_run(
                    session,
                    project,
                    RunIn(pipeline="PIPELINE", source="bench.py", spec=spec, state="running"),
                    None,
                )
                began = start + timedelta(minutes=10 * i)
                steps = [
                    StepRecord(
                        instance=node,
                        node=node,
                        position=p,
                        state="succeeded",
                        cache_key=f"sha256:{rng.randbytes(32).hex()}",
                        cached=rng.random() < 0.3,
                        started_at=began + timedelta(seconds=p),
                        finished_at=began + timedelta(seconds=p + rng.random()),
                    )
                    for p, node in enumerate(nodes)
                ]
                failed = i % 17 == 0
                update = RunUpdate(
                    state="failed" if failed else "succeeded",
                    started_at=began,
                    finished_at=began + timedelta(seconds=len(nodes) + 1),
                )
                records.apply_events(session, run, RunEventsIn(steps=steps, run=update), trust=[])
                session.flush()
                last = run.id
    db.dispose()
    return last


def pages(last_run: int, versions: int) -> list[tuple[str, str, str]]:
    """(name, page path, floor REST path)."""
    api = "/api/v1/projects/default"
    return [
        ("overview", "/", f"{api}/runs?limit=8"),
        ("models", "/models", f"{api}/models?limit=50"),
        ("model", "/models/churn", f"{api}/models/churn/versions?limit=50"),
        (
            "version (newest)",
            f"/models/churn/versions/{versions}",
            f"{api}/models/churn/versions/{versions}",
        ),
        ("version (oldest)", "/models/churn/versions/1", f"{api}/models/churn/versions/1"),
        ("runs", "/runs", f"{api}/runs?limit=50"),
        ("run (newest)", f"/runs/{last_run}", f"/api/v1/runs/{last_run}?spec=true"),
        ("run (oldest)", "/runs/1", "/api/v1/runs/1?spec=true"),
        ("schedules", "/schedules", f"{api}/schedules"),
        ("deployments", "/deployments", "/api/v1/deployments?project=default"),
        ("keys", "/keys", "/api/v1/keys"),
        ("audit", "/audit", "/api/v1/audit?limit=50"),
    ]


def measure(client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    response = client.get(path, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {path}: {response.status_code} {response.text[:300]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home)  # type: ignore[call-arg]
        db = open_database(settings, migrate=True)
        key = bootstrap(settings, db).admin_key
        t0 = time.perf_counter()
        populate(db, "churn", args.versions)
        db.dispose()
        last_run = seed_runs(settings, args.runs)
        print(
            f"seeded {args.versions} versions and {args.runs} runs in "
            f"{time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
        env["FUNADE_HOME"] = str(home)
        server = subprocess.Popen(
            [sys.executable, "-m", "funade", "up", "--port", "0", "--gateway-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        try:
            url = None
            assert server.stdout is not None
            for line in server.stdout:
                if match := re.search(r"funade is up at (http://\S+)", line):
                    url = match.group(1)
                if "Press Ctrl-C" in line:
                    break
            if url is None:
                raise SystemExit("funade up did not start")
            run(url, key, last_run, args)
        finally:
            server.terminate()
            server.wait(timeout=30)


def run(url: str, key: str, last_run: int, args: argparse.Namespace) -> None:
    bearer = {"authorization": f"Bearer {key}"}
    targets = pages(last_run, args.versions)
    with httpx.Client(base_url=url, timeout=30) as client:
        signed = client.post("/signin", data={"key": key, "next": "/"}, headers={"origin": url})
        if signed.status_code != 303:
            raise SystemExit(f"sign-in failed: {signed.status_code} {signed.text[:300]}")
        for _name, page, floor in targets:  # warm up: templates compiled, caches filled
            measure(client, page)
            measure(client, floor, bearer)
        times: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n, _, _ in targets}
        for _ in range(args.repeats):
            for name, page, floor in targets:
                times[name][0].append(measure(client, page))
                times[name][1].append(measure(client, floor, bearer))
    rows = []
    print(f"\n{'page':<18} {'median':>8} {'p95':>8} {'REST median':>12} {'ratio':>6}  target")
    for name, page, _floor in targets:
        page_ms, floor_ms = times[name]
        median, p95 = statistics.median(page_ms), _p95(page_ms)
        rest = statistics.median(floor_ms)
        ok = "ok" if p95 < TARGET_MS else "MISSED"
        print(
            f"{name:<18} {median:>6.1f}ms {p95:>6.1f}ms {rest:>10.1f}ms {median / rest:>6.1f}  {ok}"
        )
        rows.append(
            {
                "page": name,
                "path": page,
                "median_ms": round(median, 2),
                "p95_ms": round(p95, 2),
                "rest_median_ms": round(rest, 2),
            }
        )
    print(
        json.dumps(
            {"versions": args.versions, "runs": args.runs, "repeats": args.repeats, "pages": rows}
        )
    )


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
