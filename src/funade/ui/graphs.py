"""Graphs drawn by the server as SVG: pipeline DAGs and lineage (commit and data → run →
version → deployments). A layered layout, left to right: a node's column is the longest path to
it from a source; within a column, nodes sit near the mean row of their parents (one sweep,
which keeps the small graphs here readable without a layout library)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

NODE_W = 180
NODE_H = 46
GAP_X = 60
GAP_Y = 18
PAD = 12


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
    x: float = 0
    y: float = 0


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
    for index in sorted(columns):
        members = columns[index]

        def mean_parent_row(node: Node) -> float:
            rows = [row[p] for p in parents.get(node.id, ()) if p in row]
            return sum(rows) / len(rows) if rows else float("inf")

        if index > 0:
            members.sort(key=mean_parent_row)
        for position, node in enumerate(members):
            row[node.id] = position
            node.x = PAD + index * (NODE_W + GAP_X)
            node.y = PAD + position * (NODE_H + GAP_Y)
    by_id = {n.id: n for n in graph.nodes}
    for edge in edges:
        a, b = by_id[edge.source], by_id[edge.target]
        x1, y1 = a.x + NODE_W, a.y + NODE_H / 2
        x2, y2 = b.x, b.y + NODE_H / 2
        bend = max(GAP_X / 2, (x2 - x1) / 2)
        edge.path = (
            f"M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} "
            f"{x2 - bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        )
    graph.edges = edges
    tallest = max((len(m) for m in columns.values()), default=0)
    graph.width = 2 * PAD + len(columns) * NODE_W + max(0, len(columns) - 1) * GAP_X
    graph.height = 2 * PAD + tallest * NODE_H + max(0, tallest - 1) * GAP_Y
    return graph


def clip(text: str, limit: int = 24) -> str:
    """Text that fits a node's box (the whole text stays in its tooltip)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
