"""The engine's cache lookups (``pipelines/cachelookup.py``): the pipeline's entries asked for
once, then only the keys that were not among them, one call for one key or for many."""

from __future__ import annotations

from pathlib import Path

from funade.pipelines.cachelookup import CacheLookup
from tests.pipelines.fakes import FakeControlPlane, entry


def test_keys_known_from_the_pipelines_entries_need_no_further_call(tmp_path: Path) -> None:
    plane = FakeControlPlane(tmp_path, cache={"k1": entry("k1", 1), "k2": entry("k2", 2)})
    lookup = CacheLookup(plane, "flow", project="default")
    found = lookup(["k1"])
    assert found["k1"]["output"].value == 1
    assert lookup(["k2", "k1"]).keys() == {"k1", "k2"}
    assert plane.calls == [("cache_of_pipeline", "flow")]


def test_unknown_keys_are_asked_for_one_at_a_time_or_together(tmp_path: Path) -> None:
    plane = FakeControlPlane(tmp_path)
    lookup = CacheLookup(plane, "flow", project="default")
    assert lookup(["k1"]) == {}
    plane.cache |= {"k1": entry("k1", 1), "k3": entry("k3", 3)}  # written since the listing
    assert lookup(["k1"])["k1"]["output"].value == 1
    assert lookup(["k2", "k3"]).keys() == {"k3"}
    assert plane.calls == [
        ("cache_of_pipeline", "flow"),
        ("cache_lookup", "k1"),
        ("cache_lookup", "k1"),
        ("cache_lookup_many", ["k2", "k3"]),
    ]
    assert lookup([]) == {}


def test_a_control_plane_without_the_listing_is_asked_key_by_key(tmp_path: Path) -> None:
    plane = FakeControlPlane(tmp_path, cache={"k1": entry("k1", 1)})
    plane.listing = False
    lookup = CacheLookup(plane, "flow", project="default")
    assert lookup(["k1"]).keys() == {"k1"}
    assert lookup(["k1"]).keys() == {"k1"}
    assert [name for name, _ in plane.calls] == [
        "cache_of_pipeline",
        "cache_lookup",
        "cache_lookup",
    ]
