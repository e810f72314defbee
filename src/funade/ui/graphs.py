"""Graphs drawn by the server as SVG: pipeline DAGs and lineage (commit and data → run →
version → deployments). A layered layout, left to right: a node's column is the longest path to
it from a source; within a column, nodes sit near the mean row of their parents (one sweep,
which keeps the small graphs here readable without a layout library).

Boxes are sized to their text, never the text cut to the box: a column is as wide as its widest
label (up to ``MAX_W``; longer text wraps onto more lines). Text widths are estimated from
DejaVu Sans' advance widths (the font Debian's browsers fall back to, and among the widest of
the usual sans-serif fonts), rounded up, so the estimate errs on the roomy side."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

MIN_W = 120
MAX_W = 340
"""A box is never wider: longer text wraps."""
GAP_X = 60
GAP_Y = 18
PAD = 12
TEXT_X = 10
"""Padding between a box's side and its text."""
LABEL_PX = 13
SUB_PX = 11
LINE = {"label": 17, "sub": 17}
"""Line heights, in pixels, of a label line and of a sub line."""
TOP = 19
"""The first line's baseline below the box's top."""
BOTTOM = 10
"""Room below the last line's baseline."""

# Advance widths in em (DejaVu Sans, rounded up); anything not listed is taken as wide.
_EM: dict[str, float] = {}
for _chars, _width in (
    ("il|.,:;!'`", 0.32),
    ("fjrt()[]{} ·-/", 0.42),
    ("I", 0.30),
    ('"', 0.46),
    ("abcdeghknopqsuvxyz0123456789#$_+=<>?^~*", 0.65),
    ("ABCDEFGHJKLNOPQRSTUVXYZ&%", 0.80),
    ("mwMW@", 1.0),
    ("…", 1.0),
):
    for _char in _chars:
        _EM[_char] = _width


def text_width(text: str, size: float) -> float:
    """The width, in pixels, that ``text`` takes at font size ``size`` (an upper estimate)."""
    return sum(_EM.get(char, 1.0) for char in text) * size


@dataclass
class Node:
    id: str
    label: str
    sub: str = ""
    """A second, smaller line: a state, a duration, a digest."""
    css: str = ""
    """Classes, e.g. ``state-succeeded cached``."""
    href: str | None = None
    title: str = ""
    """The tooltip and accessible name (defaults to label and sub)."""
    room: str = ""
    """A sub line the box keeps room for: the longest the page may write there later (a run's
    graph updates its steps' state and time in place)."""
    x: float = 0
    y: float = 0
    w: float = 0
    h: float = 0
    lines: list[tuple[str, str]] = field(default_factory=list)
    """The text as drawn: (``label`` or ``sub``, a line), wrapped to the box."""

    def baselines(self) -> list[tuple[str, str, float]]:
        """Each line with the y of its baseline."""
        out = []
        y = self.y + TOP
        for index, (kind, line) in enumerate(self.lines):
            if index:
                y += LINE[kind]
            out.append((kind, line, y))
        return out


@dataclass
class Edge:
    source: str
    target: str
    path: str = ""


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: float = 0
    height: float = 0

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    def link(self, source: str, target: str) -> None:
        self.edges.append(Edge(source, target))


def layout(graph: Graph) -> Graph:
    """Place ``graph``'s nodes and route its edges (in place); returns it."""
    ids = {n.id for n in graph.nodes}
    edges = [e for e in graph.edges if e.source in ids and e.target in ids]
    parents: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        parents[edge.target].append(edge.source)
    column: dict[str, int] = {}

    def depth(node: str, seen: frozenset[str] = frozenset()) -> int:
        if node not in column:
            if node in seen:  # a cycle (never in a valid spec): break it here
                return 0
            column[node] = 1 + max(
                (depth(p, seen | {node}) for p in parents.get(node, ())), default=-1
            )
        return column[node]

    for node in graph.nodes:
        depth(node.id)
    columns: dict[int, list[Node]] = defaultdict(list)
    for node in graph.nodes:  # the caller's order is the first tie-break
        columns[column[node.id]].append(node)
    row: dict[str, float] = {}
    x = float(PAD)
    height = 0.0
    for index in sorted(columns):
        members = columns[index]

        def mean_parent_row(node: Node) -> float:
            rows = [row[p] for p in parents.get(node.id, ()) if p in row]
            return sum(rows) / len(rows) if rows else float("inf")

        if index > 0:
            members.sort(key=mean_parent_row)
        width = max(_natural_width(node) for node in members)
        y = float(PAD)
        for position, node in enumerate(members):
            row[node.id] = position
            _fit(node, width)
            node.x, node.y = x, y
            y += node.h + GAP_Y
        x += width + GAP_X
        height = max(height, y - GAP_Y + PAD)
    by_id = {n.id: n for n in graph.nodes}
    for edge in edges:
        a, b = by_id[edge.source], by_id[edge.target]
        x1, y1 = a.x + a.w, a.y + a.h / 2
        x2, y2 = b.x, b.y + b.h / 2
        bend = max(GAP_X / 2, (x2 - x1) / 2)
        edge.path = (
            f"M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} "
            f"{x2 - bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        )
    graph.edges = edges
    graph.width = x - GAP_X + PAD if columns else 2 * PAD
    graph.height = height if columns else 2 * PAD
    return graph


def _natural_width(node: Node) -> float:
    """The box width that shows ``node``'s label and sub lines (and its room) on one line each,
    within ``MIN_W`` and ``MAX_W``."""
    text = max(
        text_width(node.label, LABEL_PX),
        text_width(node.sub, SUB_PX),
        text_width(node.room, SUB_PX),
    )
    return float(min(MAX_W, max(MIN_W, math.ceil(text + 2 * TEXT_X))))


def _fit(node: Node, width: float) -> None:
    """Size ``node``'s box to ``width`` and wrap its text to it."""
    inner = width - 2 * TEXT_X
    node.lines = [("label", line) for line in wrap(node.label, LABEL_PX, inner)]
    if node.sub:
        node.lines += [("sub", line) for line in wrap(node.sub, SUB_PX, inner)]
    node.w = width
    node.h = TOP + sum(LINE[kind] for kind, _ in node.lines[1:]) + BOTTOM
    if len(node.lines) == 1:  # a box of one line is as tall as one of two
        node.h += LINE["sub"]


def wrap(text: str, size: float, width: float) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels at font size ``size``: broken at spaces,
    and a word wider than a line (a digest, a path) broken anywhere."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if text_width(candidate, size) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while text_width(word, size) > width:
            cut = 1
            while cut < len(word) and text_width(word[: cut + 1], size) <= width:
                cut += 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line or not lines:
        lines.append(line)
    return lines
