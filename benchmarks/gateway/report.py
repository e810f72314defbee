"""Where the gateway benchmark runs things, and the tables it writes from what it measured."""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass

from benchmarks.registry.harness import table as markdown
from benchmarks.serving.load import LoadResult

TARGETS = ("floor", "replica", "gateway", "unmerged")
LABELS = {
    "floor": "floor",
    "replica": "`funade serve`",
    "gateway": "full path",
    "unmerged": "full path, merging off",
}
UNMERGED_COLUMNS = ((8, 1),)
"""Where the full path is measured again with merging off (``gateway_merge = false``): the issue
asks that merging not make p99 at c8 worse than the unmerged path's."""
Column = tuple[int, int]  # (concurrency, rows per body)
Key = tuple[str, str, Column, str]  # placement, form, column, target


@dataclass(frozen=True)
class Placement:
    name: str
    servers: str  # taskset core list for the floor and `funade up`
    client: str  # and for wrk
    text: str


PLACEMENTS = {
    "pinned": Placement("pinned", "0", "1", "the floor, and `funade up` with its control "
                        "plane, controller, gateway and replica, on core 0; wrk on core 1"),
    "free": Placement("free", "0,1", "0,1", "the servers and wrk all free on both cores (the "
                      "floor is one process, so at most one core; funade's gateway and replica "
                      "may use both, as on a small two-core host, competing with wrk)"),
}  # fmt: skip

# The targets: (column, what is compared, the least ratio to the floor)
C1_ADDED_MS = 0.4


def column_name(column: Column) -> str:
    concurrency, rows = column
    return f"c{concurrency}" if rows == 1 else f"{rows} rows c{concurrency}"


def table(results: dict[Key, LoadResult], placement: str, args: Namespace) -> str:
    """A row per form and target: req/s (rows/s for the batch column) and p99 per column, and
    the p50 at concurrency 1."""
    header = ["form", "target"]
    for column in args.columns:
        unit = "req/s" if column[1] == 1 else "rows/s"
        header += [f"{column_name(column)} {unit}", f"{column_name(column)} p99 ms"]
        if column == (1, 1):
            header.append("c1 p50 ms")
    rows = []
    for form in args.forms:
        for target in TARGETS:
            if not any((placement, form.name, c, target) in results for c in args.columns):
                continue
            row = [form.label, LABELS[target]]
            for column in args.columns:
                got = results.get((placement, form.name, column, target))
                if got is None:  # not measured in this column
                    row += ["—", "—"] + (["—"] if column == (1, 1) else [])
                    continue
                errors = f" ({sum(got.errors.values())} errors)" if got.errors else ""
                rate = got.rps if column[1] == 1 else got.rows_per_second
                row += [f"{rate:,.0f}{errors}", f"{got.p99_ms:.2f}"]
                if column == (1, 1):
                    row.append(f"{got.p50_ms:.2f}")
            rows.append(row)
    return markdown(header, rows)


def targets_table(results: dict[Key, LoadResult], placement: str, args: Namespace) -> str:
    """Per form, each target the issue sets: the full path's ratio to the floor (the gateway's
    added p50 at concurrency 1), and whether it is met."""
    wanted: list[tuple[str, Column, float]] = [
        ("c64 ≥ 1.5x floor", (64, 1), 1.5),
        ("c8 ≥ 1x floor", (8, 1), 1.0),
        (f"{args.batch_rows} rows c8 ≥ 1x floor", (8, args.batch_rows), 1.0),
    ]
    wanted = [w for w in wanted if w[1] in args.columns]
    header = ["form", *(name for name, _, _ in wanted)]
    if (1, 1) in args.columns:
        header.append(f"c1 p50 added ≤ {C1_ADDED_MS} ms")
    unmerged = any(k[0] == placement and k[3] == "unmerged" for k in results)
    if unmerged:
        header.append("c8 p99 merged ≤ unmerged")
    rows = []
    for form in args.forms:
        row = [form.label]
        for _, column, least in wanted:
            full = results[(placement, form.name, column, "gateway")]
            floor = results[(placement, form.name, column, "floor")]
            ratio = full.rps / floor.rps
            row.append(f"{ratio:.2f}x {'yes' if ratio >= least else 'no'}")
        if (1, 1) in args.columns:
            full = results[(placement, form.name, (1, 1), "gateway")]
            alone = results[(placement, form.name, (1, 1), "replica")]
            added = full.p50_ms - alone.p50_ms
            row.append(f"{added:+.2f} ms {'yes' if added <= C1_ADDED_MS else 'no'}")
        if unmerged:
            merged = results.get((placement, form.name, (8, 1), "gateway"))
            alone = results.get((placement, form.name, (8, 1), "unmerged"))
            if merged is None or alone is None:
                row.append("—")
            else:
                ok = merged.p99_ms <= alone.p99_ms
                row.append(f"{merged.p99_ms:.2f} vs {alone.p99_ms:.2f} ms {'yes' if ok else 'no'}")
        rows.append(row)
    return markdown(header, rows)


def phase_table(phases: dict[str, dict[str, float]]) -> str:
    """The cold start's phases (seconds) and the idle CPU, a column per placement."""
    names = list(phases)
    order = list(dict.fromkeys(k for measured in phases.values() for k in measured))
    rows = []
    for what in order:
        idle = what.startswith("idle")
        target = "≤ 2%" if idle else "≤ 4 s" if what.startswith("total") else ""
        cells = [
            ("" if what not in phases[n] else
             f"{phases[n][what]:.2f}%" if idle else f"{phases[n][what]:.2f} s")
            for n in names
        ]  # fmt: skip
        rows.append([what, *cells, target])
    return markdown(["measure", *names, "target"], rows)
