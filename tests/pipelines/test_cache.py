"""The step cache in real runs: it never gives an answer other than running the steps would,
keeps what no edit reached, and --no-cache / --refresh do what they say."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.api.schemas import RunEventsIn, RunIn, StepRecord
from funade.client import Client
from funade.errors import InvalidInputError
from funade.pipelines.runs import run_pipeline
from tests.conftest import Result

FLOW = """\
from pathlib import Path

import funade
import helpers

FACTOR = 2


@funade.step
def scaled(x: int) -> int:
    return helpers.scale(x) * FACTOR


@funade.step
def plain(x: int) -> int:
    return x + 1


@funade.step
def from_file(x: int) -> int:
    return x + int((Path(__file__).parent / "data.txt").read_text())


@funade.pipeline
def flow(x: int = 1) -> None:
    scaled(x)
    plain(x)
    from_file(x)
"""

HELPERS = """\
def scale(x):
    return x * 10


def unused(x):
    return x
"""


def outputs(run: Any) -> dict[str, Any]:
    return {s.instance: s.outputs.get("output", {}).get("value") for s in run.steps}


def states(run: Any) -> dict[str, str]:
    return {s.instance: s.state for s in run.steps}


@pytest.fixture
def code(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    root.mkdir()
    (root / "flow.py").write_text(FLOW)
    (root / "helpers.py").write_text(HELPERS)
    (root / "data.txt").write_text("100")
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_edits_to_helpers_and_constants_rerun_what_they_reach_and_a_revert_is_right(
    admin: Client, code: Path
) -> None:
    target = f"{code / 'flow.py'}:flow"
    git(code, "init", "-q")
    git(code, "add", ".")
    git(code, "commit", "-q", "-m", "first")
    first = run_pipeline(target, client=admin)
    assert outputs(first) == {"scaled": 20, "plain": 2, "from_file": 101}

    edit(code / "helpers.py", "return x * 10", "return x * 30")  # a local module's function
    run = run_pipeline(target, client=admin)
    assert states(run) == {"scaled": "succeeded", "plain": "cached", "from_file": "cached"}
    assert outputs(run)["scaled"] == 60

    edit(code / "flow.py", "FACTOR = 2", "FACTOR = 3")  # a constant the step reads
    run = run_pipeline(target, client=admin)
    assert states(run)["scaled"] == "succeeded"
    assert outputs(run)["scaled"] == 90

    git(code, "checkout", "--", ".")  # back to the clean, committed tree
    run = run_pipeline(target, client=admin)
    assert states(run) == {"scaled": "cached", "plain": "cached", "from_file": "cached"}
    assert outputs(run) == outputs(first)

    edit(code / "helpers.py", "return x\n", "return x * 7  # no step calls it\n")
    edit(code / "flow.py", "def plain", "# a comment\ndef plain")
    run = run_pipeline(target, client=admin)
    assert states(run) == {"scaled": "cached", "plain": "cached", "from_file": "cached"}


def test_no_cache_neither_reads_nor_writes_and_refresh_writes_without_reading(
    admin: Client, code: Path
) -> None:
    target = f"{code / 'flow.py'}:flow"
    off = run_pipeline(target, client=admin, use_cache=False)
    assert (off.use_cache, off.refresh_cache) == (False, False)
    assert set(states(off).values()) == {"succeeded"}
    key = next(s.cache_key for s in off.steps if s.node == "plain")
    assert admin.cache_lookup(key) is None  # nothing written
    run = run_pipeline(target, client=admin)  # so nothing to reuse
    assert set(states(run).values()) == {"succeeded"}

    (code / "data.txt").write_text("500")  # a file read by path: not in the key
    stale = run_pipeline(target, client=admin)
    assert outputs(stale)["from_file"] == 101
    assert states(stale)["from_file"] == "cached"

    refreshed = run_pipeline(target, client=admin, refresh_cache=True)
    assert (refreshed.use_cache, refreshed.refresh_cache) == (True, True)
    assert set(states(refreshed).values()) == {"succeeded"}  # nothing read
    assert outputs(refreshed)["from_file"] == 501
    run = run_pipeline(target, client=admin)  # what --refresh wrote
    assert set(states(run).values()) == {"cached"}
    assert outputs(run)["from_file"] == 501


def test_contradicting_cache_options_are_refused(
    admin: Client, admin_key: str, app_url: str, code: Path
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        run_pipeline(f"{code / 'flow.py'}:flow", client=admin, use_cache=False, refresh_cache=True)
    assert caught.value.field == "refresh_cache"
    assert "contradict each other" in str(caught.value)

    body = RunIn(pipeline="flow", spec={}, use_cache=False, refresh_cache=True)
    answer = httpx.post(
        f"{app_url}/api/v1/projects/default/runs",
        json=body.model_dump(mode="json"),
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["field"] == "refresh_cache"
    assert error["value"] is True
    assert error["message"].startswith("refresh_cache runs every step and writes its outputs")
    assert error["fix"] == (
        "Drop one: --refresh (refresh_cache true) or --no-cache (use_cache false)."
    )


@pytest.mark.parametrize("use_cache", [False, True])
def test_a_no_cache_run_writes_no_entry_even_when_its_runner_asks(
    admin: Client, use_cache: bool
) -> None:
    spec = {"name": "flow", "nodes": [{"id": "step", "function": "m:step"}]}
    run = admin.create_run(RunIn(pipeline="flow", spec=spec, use_cache=use_cache))
    assert run.token
    key = f"sha256:{'a' if use_cache else 'c'}" + "0" * 63
    record = StepRecord(
        instance="step",
        node="step",
        state="succeeded",
        cache_key=key,
        cache_write=True,
        outputs={"output": {"digest": "sha256:" + "b" * 64, "kind": "json", "value": 1}},
    )
    with admin.with_key(run.token) as runner:
        runner.report_run(run.id, RunEventsIn(steps=[record]))
    assert states(admin.get_run(run.id)) == {"step": "succeeded"}  # recorded either way
    assert (admin.cache_lookup(key) is not None) is use_cache


class Seen:
    """An observer that keeps the log lines a live display would show."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def started(self, run: Any, spec: Any) -> None:
        pass

    def step(self, record: Any) -> None:
        pass

    def log(self, instance: str, line: str) -> None:
        self.lines.append((instance, line))


UNHASHABLE = """\
import threading

import funade

LOCK = threading.Lock()


@funade.step
def locked(x: int) -> int:
    with LOCK:
        return x * 2


@funade.pipeline
def flow() -> None:
    locked.map(x=[1, 2, 3])
"""


def test_a_step_reading_an_unhashable_global_always_runs_and_the_run_says_why_once(
    admin: Client, tmp_path: Path
) -> None:
    path = tmp_path / "locked.py"
    path.write_text(UNHASHABLE)
    target = f"{path}:flow"
    run_pipeline(target, client=admin)
    seen = Seen()
    again = run_pipeline(target, client=admin, observer=seen)
    assert set(states(again).values()) == {"succeeded"}
    assert [outputs(again)[f"locked[{i}]"] for i in range(3)] == [2, 4, 6]
    why = (
        "funade: step 'locked' is not cached: locked.locked reads the global LOCK, of type "
        "_thread.lock, which cannot be hashed."
    )
    logs = [admin.run_logs(again.id, step=f"locked[{i}]") for i in range(3)]
    assert sum(log.count(why) for log in logs) == 1
    assert [line for _, line in seen.lines if "not cached" in line] == [why]  # shown live
    spec = admin.get_run(again.id, spec=True).spec
    assert spec is not None
    assert spec["nodes"][0]["uncacheable"] == why.removeprefix(
        "funade: step 'locked' is not cached: "
    ).removesuffix(".")


def test_the_cli_options(cli: Any, code: Path) -> None:
    target = f"{code / 'flow.py'}:flow"
    both: Result = cli("pipeline", "run", target, "--no-cache", "--refresh")
    assert both.code == 2
    assert "contradict each other" in " ".join(both.err.split())
    assert cli("pipeline", "run", target).code == 0
    refreshed: Result = cli("pipeline", "run", target, "--refresh", "--json")
    assert refreshed.code == 0, refreshed.err
    assert '"refresh_cache": true' in refreshed.out
    assert '"cached": true' not in refreshed.out
    cached: Result = cli("pipeline", "run", target)
    assert "(3 of 3 steps from the cache)" in " ".join(cached.out.split())
    off: Result = cli("pipeline", "run", target, "--no-cache", "--json")
    assert '"use_cache": false' in off.out


GATED = """\
import os
import sys
import time

import funade

if sys.argv[0].endswith("zygote.py"):  # the step processes' importer waits for the test
    deadline = time.monotonic() + 60
    while not os.path.exists("GATE_PATH") and time.monotonic() < deadline:
        time.sleep(0.01)

import helpers


@funade.step
def scaled(x: int) -> int:
    return helpers.scale(x)


@funade.pipeline
def flow(x: int = 1) -> None:
    scaled(x)
"""


def test_code_saved_while_a_run_starts_is_run_but_never_cached_under_the_old_key(
    admin: Client, tmp_path: Path
) -> None:
    """The key is computed where the run is compiled, the steps run code their processes
    import again: a file saved in between must not put its outputs under the old key."""
    gate = tmp_path / "gate"
    root = tmp_path / "code"
    root.mkdir()
    (root / "flow.py").write_text(GATED.replace("GATE_PATH", str(gate)))
    (root / "helpers.py").write_text(HELPERS)
    target = f"{root / 'flow.py'}:flow"

    def save_meanwhile(run: Any) -> None:
        edit(root / "helpers.py", "return x * 10", "return x * 30")
        gate.write_text("")

    seen = Seen()
    run = run_pipeline(target, client=admin, on_created=save_meanwhile, observer=seen)
    assert outputs(run) == {"scaled": 30}  # what the step processes imported
    assert "funade: step 'scaled' is not cached: its code changed after the run compiled it." in [
        line for _, line in seen.lines
    ]
    edit(root / "helpers.py", "return x * 30", "return x * 10")  # what the key was made of
    again = run_pipeline(target, client=admin)
    assert states(again) == {"scaled": "succeeded"}
    assert outputs(again) == {"scaled": 10}
