"""The server-side graph layout (no browser): boxes sized to their whole text, long text wrapped
inside the widest box, room kept for text written later. The browser tests check the same on
the pages, as Chromium lays the text out (``graph_text_overflows``)."""

from __future__ import annotations

import pytest

from funade.ui.graphs import (
    LABEL_PX,
    MAX_W,
    MIN_W,
    SUB_PX,
    TEXT_X,
    Graph,
    Node,
    layout,
    text_width,
    wrap,
)


def test_a_box_is_as_wide_as_its_text_and_its_column() -> None:
    graph = Graph()
    graph.add(Node("a", "a", "ok"))
    graph.add(Node("b", "a rather longer label than the others", "running · training · register"))
    graph.add(Node("c", "c", "ok"))
    graph.link("a", "b")
    graph.link("a", "c")
    layout(graph)
    a, b, c = graph.nodes
    assert a.w == MIN_W
    assert b.w >= text_width(b.label, LABEL_PX) + 2 * TEXT_X
    assert b.w == c.w, "a column's boxes are as wide as its widest"
    assert [line for _, line in b.lines] == [b.label, b.sub], "whole, one line each"
    assert c.x == b.x == a.x + a.w + 60
    assert graph.width == b.x + b.w + 12
    assert graph.edges[0].path.startswith(f"M{a.x + a.w:.0f},")


def test_text_wider_than_the_widest_box_wraps_inside_it() -> None:
    name = "customers_with_their_last_twelve_months_of_invoices and support tickets " * 2
    graph = layout(Graph([Node("d", name.strip(), "ndarray · 2d36aa891ede")]))
    (node,) = graph.nodes
    assert node.w == MAX_W
    labels = [line for kind, line in node.lines if kind == "label"]
    assert len(labels) > 2
    assert all(text_width(line, LABEL_PX) <= MAX_W - 2 * TEXT_X for line in labels)
    assert "".join(labels).replace(" ", "") == name.replace(" ", ""), "every character drawn"
    assert node.h > 46, "taller for its lines"
    baselines = [y for _, _, y in node.baselines()]
    assert baselines == sorted(baselines)
    assert baselines[-1] < node.y + node.h
    assert graph.height == node.y + node.h + 12


def test_a_box_keeps_room_for_text_written_later() -> None:
    room = "succeeded · 59 min 59 s"
    (node,) = layout(Graph([Node("s", "s", "pending", room=room)])).nodes
    assert node.w >= text_width(room, SUB_PX) + 2 * TEXT_X
    assert [line for _, line in node.lines] == ["s", "pending"]


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", [""]),
        ("short", ["short"]),
        ("one two three four", ["one two", "three", "four"]),
        ("abcdefghijklmnop", ["abcdefgh", "ijklmnop"]),
    ],
)
def test_wrap(text: str, lines: list[str]) -> None:
    width = text_width("abcdefgh", 10)
    assert wrap(text, 10, width) == lines
