"""The cache's property: after any edits to a small project (a helper function, constants, a
second module, comments), a cached run gives exactly what running every step gives, and a
step no edit could reach stays cached.

Random sequences of edits, each version run through the real runner against a real control
plane: once with the cache, once with ``use_cache=False`` (``--no-cache``). The values are also
checked against a model of the project, and so is which steps the cache answered."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funade.client import Client
from funade.pipelines.runs import run_pipeline

FLOW = """\
import funade
import helpers
from helpers import shift

FACTOR = {factor}


@funade.step
def scaled(x: int) -> int:
    return helpers.scale(x) * FACTOR


@funade.step
def shifted(x: int) -> int:
    return shift(x)


@funade.step
def combined(x: int) -> int:
    import other

    return other.based(x)


@funade.step
def plain(x: int) -> int:
    return x + 1


@funade.pipeline
def flow(x: int = 2) -> None:
    scaled(x)
    shifted(x)
    combined(x)
    plain(x)
"""

HELPERS = """\
OFFSET = {offset}


def scale(x):
    return x * {multiplier}


def shift(x):
    return x + OFFSET


def unused(x):
    return x * {unused}
"""

OTHER = """\
from helpers import shift

BASE = {base}
UNUSED = {unused_constant}


def based(x):
    return shift(x) * BASE
"""

READS = {
    "scaled": {"multiplier", "factor"},
    "shifted": {"offset"},
    "combined": {"offset", "base"},
    "plain": set(),
}
"""What each step can reach of the project's values."""


@dataclass(frozen=True)
class Version:
    factor: int = 2
    multiplier: int = 3
    offset: int = 1
    base: int = 5
    unused: int = 7
    unused_constant: int = 9
    comments: tuple[tuple[str, int, str], ...] = field(default=())

    def expected(self, x: int = 2) -> dict[str, int]:
        return {
            "scaled": x * self.multiplier * self.factor,
            "shifted": x + self.offset,
            "combined": (x + self.offset) * self.base,
            "plain": x + 1,
        }

    def files(self) -> dict[str, str]:
        values = self.__dict__
        texts = {
            "flow": FLOW.format(**values),
            "helpers": HELPERS.format(**values),
            "other": OTHER.format(**values),
        }
        for module, at, text in self.comments:  # whole-line or trailing comments
            lines = texts[module].split("\n")
            where = at % len(lines)
            if at % 2 and lines[where].strip():
                lines[where] += f"  # {text}"
            else:
                lines.insert(where, f"# {text}")
            texts[module] = "\n".join(lines)
        return texts


VALUES = st.integers(min_value=1, max_value=4)
EDITS = st.one_of(
    st.tuples(st.sampled_from(["factor", "multiplier", "offset", "base"]), VALUES),
    st.tuples(st.sampled_from(["unused", "unused_constant"]), VALUES),
    st.tuples(
        st.just("comment"),
        st.tuples(
            st.sampled_from(["flow", "helpers", "other"]),
            st.integers(min_value=0, max_value=60),
            st.text(alphabet="abc xyz=()", min_size=1, max_size=12),
        ),
    ),
)


def apply(version: Version, edit: tuple[str, Any]) -> Version:
    kind, value = edit
    if kind == "comment":
        return replace(version, comments=(*version.comments, value))
    return replace(version, **{kind: value})


def outputs(run: Any) -> dict[str, Any]:
    return {s.instance: s.outputs["output"]["value"] for s in run.steps}


@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=st.lists(EDITS, min_size=1, max_size=3))
def test_a_cached_run_gives_what_running_every_step_gives(
    admin: Client, tmp_path: Path, edits: list[tuple[str, Any]]
) -> None:
    """The project's directory, the control plane and its cache are shared by the examples:
    each starts from the same version, so the cache holds what earlier ones wrote."""
    target = f"{tmp_path / 'flow.py'}:flow"
    version, previous = Version(), None
    for edit in [None, *edits]:
        if edit is not None:
            previous, version = version, apply(version, edit)
        for name, text in version.files().items():
            (tmp_path / f"{name}.py").write_text(text)
        cached = run_pipeline(target, client=admin)
        fresh = run_pipeline(target, client=admin, use_cache=False)
        assert cached.state == fresh.state == "succeeded", (cached.reason, fresh.reason)
        assert outputs(cached) == outputs(fresh) == version.expected(), (edit, version)
        if previous is not None:  # what the edit could not reach was written before
            untouched = {
                step
                for step, reads in READS.items()
                if all(getattr(previous, r) == getattr(version, r) for r in reads)
            }
            hits = {s.instance for s in cached.steps if s.state == "cached"}
            assert untouched <= hits, (edit, untouched, hits)
