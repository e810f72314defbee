"""What a step's cache key covers of its code: all the project's code and data it can reach
(across modules, transitively), and nothing it cannot reach.

Each test writes a small project to disk and compiles its pipeline the way a run does
(``load_pipeline``), after every edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from funade.pipelines.loader import load_pipeline
from funade.pipelines.spec import NodeSpec

FLOW = """\
import funade
import helpers
from helpers import shift

FACTOR = 2
UNUSED = 1


@funade.step
def scaled(x: int) -> int:
    return helpers.scale(x) * FACTOR


@funade.step
def shifted(x: int) -> int:
    return shift(x)


@funade.step
def lazy(x: int) -> int:
    from helpers import scale

    return scale(x)


@funade.step
def plain(x: int) -> int:
    return x + 1


@funade.pipeline
def flow(x: int = 1) -> None:
    scaled(x)
    shifted(x)
    lazy(x)
    plain(x)
"""

HELPERS = """\
import deep


def scale(x):
    return x * deep.BASE


def shift(x):
    return x + 1


def unused(x):
    return x
"""

DEEP = "BASE = 10\nOTHER = 1\n"


class Project:
    """A pipeline file and its modules in a directory; :meth:`nodes` compiles it as a run
    does (after any edit)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def write(self, **files: str) -> Project:
        for name, text in files.items():
            (self.root / f"{name}.py").write_text(textwrap.dedent(text))
        return self

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.root / f"{name}.py"
        text = path.read_text()
        assert old in text, (old, text)
        path.write_text(text.replace(old, new))

    def nodes(self, pipeline: str = "flow") -> dict[str, NodeSpec]:
        spec = load_pipeline(f"{self.root / 'flow.py'}:{pipeline}").compile()
        return {n.id: n for n in spec.nodes}

    def digests(self) -> dict[str, str]:
        nodes = self.nodes()
        for node in nodes.values():
            assert not node.uncacheable, node.uncacheable
        return {k: n.code_digest for k, n in nodes.items()}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "project").write(flow=FLOW, helpers=HELPERS, deep=DEEP)


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before if before[k] != after[k]}


def test_a_change_in_a_local_module_changes_exactly_the_steps_that_reach_it(
    project: Project,
) -> None:
    base = project.digests()
    project.edit("helpers", "return x + 1", "return x + 2")  # shift
    assert changed(base, project.digests()) == {"shifted"}
    project.edit("helpers", "return x * deep.BASE", "return x * deep.BASE + 1")  # scale
    assert changed(base, project.digests()) == {"shifted", "scaled", "lazy"}


def test_a_constant_read_through_another_module_counts_and_a_revert_restores_the_key(
    project: Project,
) -> None:
    base = project.digests()
    project.edit("deep", "BASE = 10", "BASE = 11")  # read by helpers.scale, in a third module
    assert changed(base, project.digests()) == {"scaled", "lazy"}
    project.edit("deep", "BASE = 11", "BASE = 10")
    assert project.digests() == base

    project.edit("flow", "FACTOR = 2", "FACTOR = 3")  # the pipeline file's own constant
    assert changed(base, project.digests()) == {"scaled"}
    project.edit("flow", "FACTOR = 3", "FACTOR = 2")
    assert project.digests() == base


def test_edits_a_step_cannot_reach_keep_its_key(project: Project) -> None:
    base = project.digests()
    project.edit("helpers", "return x\n", "return x * 100\n")  # helpers.unused
    project.edit("deep", "OTHER = 1", "OTHER = 2")
    project.edit("flow", "UNUSED = 1", "UNUSED = 2\n\n\ndef more():\n    return 3")
    project.write(other="VALUE = 1\n")
    assert project.digests() == base


def test_comments_formatting_and_docstrings_change_nothing(project: Project) -> None:
    base = project.digests()
    project.edit("helpers", "def scale(x):\n", "# scales\ndef scale(x):  # by BASE\n")
    project.edit(
        "helpers", "return x * deep.BASE", '"""Times BASE."""\n    return (x *\n        deep.BASE)'
    )
    project.edit(
        "flow", "def plain(x: int) -> int:\n", 'def plain(x: int) -> int:\n    """One more."""\n\n'
    )
    project.edit("deep", "BASE = 10", "# the base\nBASE = 10  # ten")
    assert project.digests() == base


def test_which_object_a_name_refers_to_counts(project: Project) -> None:
    project.write(
        flow="""\
        import funade
        from statistics import mean as summary

        def a():
            return 1

        def b():
            return 2

        @funade.step
        def difference() -> int:
            return a() - b()

        @funade.step
        def summarized() -> float:
            return summary([1, 2, 4])

        @funade.pipeline
        def flow() -> None:
            difference()
            summarized()
        """
    )
    base = project.digests()
    project.edit("flow", "return 1\n", "return 0\n")
    project.edit("flow", "return 2\n", "return 1\n")
    project.edit("flow", "return 0\n", "return 2\n")  # a and b swapped their bodies
    project.edit("flow", "mean as summary", "median as summary")  # another standard function
    assert changed(base, project.digests()) == {"difference", "summarized"}


def test_plain_data_is_hashed_by_value_and_other_globals_make_the_step_uncacheable(
    project: Project,
) -> None:
    project.write(
        flow="""\
        import enum
        import threading
        from dataclasses import dataclass

        import numpy as np

        import funade


        class Mode(enum.Enum):
            FAST = "fast"
            SLOW = "slow"


        @dataclass(frozen=True)
        class Config:
            rate: float = 0.1


        SETTINGS = {"sizes": [1, 2, (3, 4)], "names": {"a", "b"}, "mode": Mode.FAST}
        WEIGHTS = np.arange(4, dtype="float32")
        CONFIG = Config(rate=0.5)
        LOCK = threading.Lock()


        @funade.step
        def configured() -> float:
            return SETTINGS["sizes"][0] + float(WEIGHTS.sum()) + CONFIG.rate


        @funade.step
        def locked() -> int:
            with LOCK:
                return 1


        @funade.pipeline
        def flow() -> None:
            configured()
            locked()
        """
    )
    nodes = project.nodes()
    assert nodes["configured"].uncacheable == ""
    assert nodes["configured"].packages == {"numpy": np.__version__}
    assert nodes["locked"].uncacheable == (
        "flow.locked reads the global LOCK, of type _thread.lock, which cannot be hashed"
    )
    base = nodes["configured"].code_digest
    for old, new in (
        ("[1, 2, (3, 4)]", "[1, 2, (3, 5)]"),
        ('"mode": Mode.FAST', '"mode": Mode.SLOW'),
        ('dtype="float32"', 'dtype="float64"'),
        ("Config(rate=0.5)", "Config(rate=0.6)"),
        ("rate: float = 0.1", "rate: float = 0.2"),  # the class's source
    ):
        project.edit("flow", old, new)
        digest = project.nodes()["configured"].code_digest
        assert digest != base, (old, new)
        base = digest


def test_a_value_that_breaks_when_read_makes_the_step_uncacheable_not_the_run_fail(
    project: Project,
) -> None:
    project.write(
        flow="""\
        import funade


        class Remote:
            \"\"\"A proxy to a service: any attribute is asked of it, and it is not there.\"\"\"

            def __getattr__(self, name):
                raise RuntimeError("not connected")

            def __call__(self, x):
                return x


        CLIENT = Remote()


        @funade.step
        def remote(x: int) -> int:
            return CLIENT(x)


        @funade.pipeline
        def flow() -> None:
            remote(1)
        """
    )
    node = project.nodes()["remote"]
    assert node.uncacheable == "its code could not be hashed (RuntimeError: not connected)"


def test_a_module_used_as_a_whole_counts_whole(project: Project) -> None:
    project.edit("flow", "return x + 1\n", 'return getattr(helpers, "shift")(x)\n')  # plain
    base = project.digests()
    project.edit("helpers", "return x\n", "return x * 100\n")  # helpers.unused
    assert changed(base, project.digests()) == {"plain"}


def test_classes_count_by_their_source_and_what_it_reads(project: Project) -> None:
    project.write(
        shapes="""\
        import deep


        class Shape:
            \"\"\"A shape.\"\"\"

            sides = 4

            def area(self, x):
                return x * self.sides * deep.BASE
        """,
        flow="""\
        import funade
        from shapes import Shape


        @funade.step
        def area(x: int) -> int:
            return Shape().area(x)


        @funade.pipeline
        def flow() -> None:
            area(1)
        """,
    )
    base = project.digests()
    project.edit("shapes", '"""A shape."""', '"""A square."""  # docstrings do not count')
    assert project.digests() == base
    for old, new in (("sides = 4", "sides = 5"), ("BASE = 10", "BASE = 12")):
        project.edit("deep" if "BASE" in old else "shapes", old, new)
        digest = project.digests()
        assert digest != base, (old, new)
        base = digest


def test_code_edited_after_this_process_imported_it_is_not_cached(project: Project) -> None:
    base = project.digests()
    import flow  # the module load_pipeline loaded, as a notebook holds it

    project.edit("deep", "BASE = 10", "BASE = 11")
    stale = {n.id: n.uncacheable for n in flow.flow.compile().nodes}
    deep_path = project.root / "deep.py"
    assert stale["scaled"] == (
        f"helpers.scale reads deep: {deep_path} changed after this process imported it"
    )
    assert stale["shifted"] == stale["plain"] == ""
    assert changed(base, project.digests()) == {"scaled", "lazy"}  # loaded anew: fresh


def test_projects_with_modules_of_the_same_name_each_hash_their_own(tmp_path: Path) -> None:
    first = Project(tmp_path / "first").write(flow=FLOW, helpers=HELPERS, deep=DEEP)
    second = Project(tmp_path / "second").write(
        flow=FLOW, helpers=HELPERS.replace("return x + 1", "return x + 2"), deep=DEEP
    )
    before = first.digests()
    assert changed(before, second.digests()) == {"shifted"}
    assert first.digests() == before  # its own helpers again, not the other's
    import helpers  # what a step process of the first would import

    assert helpers.__file__ == str(first.root / "helpers.py")


def _run(code: str, cwd: Path, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


DIGESTS = """
import json, sys
from funade.pipelines.loader import load_pipeline
spec = load_pipeline(sys.argv[1] if len(sys.argv) > 1 else "flow.py:flow").compile()
nodes = {n.id: [n.code_digest, n.packages, n.uncacheable] for n in spec.nodes}
import helpers, deep
print(json.dumps({"nodes": nodes, "base": deep.BASE}))
"""


def test_a_stale_pyc_is_never_what_is_hashed_or_run(project: Project) -> None:
    """Python trusts a .pyc whose source has the same mtime (to the second) and size: a file
    rewritten within a second at the same size, e.g. a quick revert, is imported stale."""
    _run("import helpers, deep", project.root)  # plain Python writes the .pyc files
    assert list((project.root / "__pycache__").glob("deep.*.pyc"))
    deep = project.root / "deep.py"
    before = deep.stat()
    deep.write_text(DEEP.replace("BASE = 10", "BASE = 77"))  # the same size
    os.utime(deep, ns=(before.st_atime_ns, before.st_mtime_ns))  # within the same second
    assert _run("import deep; print(deep.BASE)", project.root).strip() == "10"  # stale

    fresh = json.loads(_run(DIGESTS, project.root))
    assert fresh["base"] == 77  # funade compiled the project's modules from their source
    for pyc in (project.root / "__pycache__").glob("*.pyc"):
        pyc.unlink()
    assert json.loads(_run(DIGESTS, project.root)) == fresh  # as without any .pyc


INSTALLED = """\
Metadata-Version: 2.1
Name: {name}
Version: {version}
"""


def _install(site: Path, name: str, version: str, url: str, source: str) -> None:
    """A distribution as pip leaves it in site-packages, with its direct_url.json."""
    (site / name).mkdir(parents=True, exist_ok=True)
    (site / name / "__init__.py").write_text(source)
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(INSTALLED.format(name=name, version=version))
    (info / "top_level.txt").write_text(f"{name}\n")
    (info / "RECORD").write_text("")
    if url:
        (info / "direct_url.json").write_text(json.dumps({"url": url, "dir_info": {}}))


def test_packages_installed_from_a_local_path_are_hashed_by_content(
    project: Project, tmp_path: Path
) -> None:
    site = tmp_path / "venv" / "site-packages"
    project.write(
        flow="""\
        import funade
        import teamlib
        import vendored

        @funade.step
        def local() -> int:
            return teamlib.value()

        @funade.step
        def released() -> int:
            return vendored.value()

        @funade.pipeline
        def flow() -> None:
            local()
            released()
        """
    )

    def digests(team: str, vendor: str, version: str = "1.0") -> dict[str, list[object]]:
        _install(site, "teamlib", "0.1", f"file://{tmp_path}/teamlib", team)
        _install(site, "vendored", version, "", vendor)
        for old in site.glob("vendored-*.dist-info"):
            if old.name != f"vendored-{version}.dist-info":
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
        out = _run(DIGESTS, project.root, PYTHONPATH=str(site))
        return dict(json.loads(out)["nodes"])

    base = digests("def value():\n    return 1\n", "def value():\n    return 1\n")
    assert base["released"][1] == {"vendored": "1.0"}
    assert base["local"][1] == {}  # hashed by content instead
    edited = digests("def value():\n    return 2\n", "def value():\n    return 2\n")
    assert edited["local"][0] != base["local"][0]
    assert edited["released"][0] == base["released"][0]  # an installed release: its version
    upgraded = digests("def value():\n    return 2\n", "def value():\n    return 2\n", "1.1")
    assert upgraded["released"][1] == {"vendored": "1.1"}


def test_a_step_that_calls_another_step_hashes_that_steps_function(project: Project) -> None:
    """A step object a step refers to counts by its function (codereader knows where the DSL
    defines steps and pipelines), so the caller stays cacheable and follows the callee's edits."""
    project.edit(
        "flow",
        "@funade.pipeline\n",
        "@funade.step\ndef twice(x: int) -> int:\n    return plain(x) * 2\n\n\n@funade.pipeline\n",
    )
    project.edit("flow", "    plain(x)\n", "    plain(x)\n    twice(x)\n")
    before = project.digests()
    project.edit("flow", "return x + 1", "return x + 2")
    assert changed(before, project.digests()) == {"plain", "twice"}


def test_step_and_pipeline_objects_are_known_wherever_the_dsl_defines_them() -> None:
    """codereader knows steps and pipelines by their classes' modules (it cannot import the
    DSL, which imports it): were they not known, a step that refers to another would hash it as
    a third party's decorated function, and every such step's key would change."""
    import funade
    from funade.pipelines.codereader import _step_function

    def inc(x: int) -> int:
        return x + 1

    def flow() -> None:
        pass

    step, pipeline = funade.step(inc), funade.pipeline(flow)
    assert _step_function(step) is inc
    assert _step_function(pipeline) is flow
    assert _step_function(inc) is None
