"""Real runs: step processes forked by the zygote, outputs in the artifact store, records in a
real control plane over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from funade.client import Client
from funade.errors import InvalidInputError
from funade.pipelines.runs import resume_run, run_pipeline
from tests.pipelines.conftest import Receiver, counts

Write = Callable[..., str]


def states(run: object) -> dict[str, str]:
    return {s.instance: s.state for s in run.steps}  # type: ignore[attr-defined]


def test_values_of_every_kind_flow_between_steps(admin: Client, write_pipeline: Write) -> None:
    target = write_pipeline(
        """
        import numpy as np
        import pandas as pd

        class Box:
            def __init__(self, n: int) -> None:
                self.n = n

        @funade.step
        def make(n: int) -> tuple:
            return (n, "x")

        @funade.step
        def array(n: int) -> np.ndarray:
            return np.arange(n, dtype=np.float32)

        @funade.step
        def frame(n: int) -> pd.DataFrame:
            return pd.DataFrame({"a": range(n), "b": ["x"] * n})

        @funade.step(secrets={"OUT": "env:OUT"})
        def folder(n: int) -> Path:
            out = Path(os.environ["OUT"]) / "folder"
            (out / "sub").mkdir(parents=True, exist_ok=True)
            (out / "sub" / "f.txt").write_text("hi" * n)
            return out

        @funade.step
        def boxed(n: int) -> Box:
            return Box(n)

        @funade.step
        def big(n: int) -> list[int]:
            return list(range(5000))

        @funade.step
        def check(t: tuple, a: np.ndarray, f: pd.DataFrame, d: Path, b: Box, l: list[int]) -> str:
            assert t == [3, "x"]
            assert a.dtype == np.float32 and a.tolist() == [0, 1, 2]
            assert f["b"].tolist() == ["x"] * 3
            assert (d / "sub" / "f.txt").read_text() == "hihihi"
            assert b.n == 3 and len(l) == 5000
            return "ok"

        @funade.pipeline
        def flow(n: int = 3) -> None:
            check(make(n), array(n), frame(n), folder(n), boxed(n), big(n))
        """
    )
    os.environ["OUT"] = str(Path(target.partition(":")[0]).parent)
    try:
        run = run_pipeline(target, client=admin)
    finally:
        del os.environ["OUT"]
    assert run.state == "succeeded", run.reason
    outputs = {s.instance: s.outputs["output"] for s in run.steps}
    assert outputs["check"]["value"] == "ok"
    assert outputs["array"]["kind"] == "numpy"
    assert outputs["frame"]["kind"] == "parquet"
    assert outputs["folder"]["kind"] == "directory"
    assert outputs["boxed"]["kind"] == "pickle"
    assert outputs["big"]["inline"] is False  # too big to keep in the record: an artifact
    assert admin.artifact_exists(outputs["big"]["digest"])


def test_independent_steps_run_at_the_same_time(admin: Client, write_pipeline: Write) -> None:
    target = write_pipeline(
        """
        @funade.step
        def nap(i: int) -> int:
            time.sleep(0.6)
            return i

        @funade.pipeline
        def flow() -> None:
            nap(1)
            nap(2)
        """
    )
    run = run_pipeline(target, client=admin)
    first, second = run.steps
    assert first.started_at is not None
    assert second.started_at is not None
    assert first.finished_at is not None
    assert second.finished_at is not None
    assert first.started_at < second.finished_at
    assert second.started_at < first.finished_at


def test_a_crash_an_exit_or_a_kill_fails_that_step_only(
    admin: Client, write_pipeline: Write
) -> None:
    target = write_pipeline(
        """
        @funade.step
        def raises() -> int:
            raise ValueError("bad data in row 3")

        @funade.step
        def exits() -> int:
            os._exit(3)

        @funade.step
        def killed() -> int:
            os.kill(os.getpid(), 9)
            return 1

        @funade.step
        def fine() -> int:
            return 1

        @funade.step
        def after(x: int) -> int:
            return x

        @funade.pipeline
        def flow() -> None:
            after(raises())
            exits()
            killed()
            fine()
        """
    )
    run = run_pipeline(target, client=admin)
    assert run.state == "failed"
    errors = {s.instance: (s.state, s.error) for s in run.steps}
    assert errors["raises"] == ("failed", "ValueError: bad data in row 3")
    assert errors["exits"] == ("failed", "the step's process exited with code 3 before it finished")
    assert errors["killed"] == (
        "failed",
        "the step's process was killed by SIGKILL (out of memory?)",
    )
    assert errors["fine"] == ("succeeded", "")
    assert errors["after"] == ("upstream_failed", "step 'raises' failed")
    assert "Traceback" in admin.run_logs(run.id, step="raises")
    assert "ValueError: bad data in row 3" in admin.run_logs(run.id, step="raises")


def test_a_failing_attempt_is_retried(admin: Client, write_pipeline: Write, marks: Path) -> None:
    target = write_pipeline(
        f"""
        @funade.step(retries=2, retry_backoff=0.05)
        def flaky() -> int:
            with open({str(marks)!r}, "a") as f:
                f.write("flaky\\n")
            if Path({str(marks)!r}).read_text().count("flaky") < 2:
                raise ConnectionError("the database went away")
            print("second time lucky")
            return 7

        @funade.pipeline
        def flow() -> None:
            flaky()
        """
    )
    run = run_pipeline(target, client=admin)
    assert run.state == "succeeded"
    (step,) = run.steps
    assert step.attempt == 2
    logs = admin.run_logs(run.id, step="flaky")
    assert "ConnectionError: the database went away" in logs
    assert "--- attempt 2 ---" in logs
    assert "second time lucky" in logs


def test_a_hung_step_is_killed_at_its_timeout(admin: Client, write_pipeline: Write) -> None:
    target = write_pipeline(
        """
        @funade.step(timeout=0.5)
        def hangs() -> int:
            time.sleep(60)
            return 1

        @funade.pipeline
        def flow() -> None:
            hangs()
        """
    )
    began = time.monotonic()
    run = run_pipeline(target, client=admin)
    assert time.monotonic() - began < 30
    assert states(run) == {"hangs": "failed"}
    assert run.steps[0].error == "timed out after 0.5s and was killed"


CACHED = """
@funade.step(secrets={"MARKS": "env:MARKS"})
def first(n: int) -> int:
    with open(os.environ["MARKS"], "a") as f:
        f.write("first\\n")
    return n + 1

@funade.step(secrets={"MARKS": "env:MARKS"})
def second(x: int) -> int:
    with open(os.environ["MARKS"], "a") as f:
        f.write("second\\n")
    return x * BODY

@funade.pipeline
def flow(n: int = 1) -> None:
    second(first(n))
"""


def test_an_unchanged_step_with_unchanged_inputs_is_a_cache_hit(
    admin: Client, write_pipeline: Write, marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKS", str(marks))
    target = write_pipeline(CACHED.replace("BODY", "2"))
    assert run_pipeline(target, client=admin).state == "succeeded"
    again = run_pipeline(target, client=admin)
    assert states(again) == {"first": "cached", "second": "cached"}
    assert all(s.cached for s in again.steps)
    assert next(s for s in again.steps if s.node == "second").outputs["output"]["value"] == 4
    assert counts(marks) == {"first": 1, "second": 1}

    other_params = run_pipeline(target, client=admin, params={"n": 5})
    assert states(other_params) == {"first": "succeeded", "second": "succeeded"}

    target = write_pipeline(CACHED.replace("BODY", "3"))  # only `second` changed
    changed = run_pipeline(target, client=admin)
    assert states(changed) == {"first": "cached", "second": "succeeded"}
    assert next(s for s in changed.steps if s.node == "second").outputs["output"]["value"] == 6

    fresh = run_pipeline(target, client=admin, use_cache=False)
    assert states(fresh) == {"first": "succeeded", "second": "succeeded"}
    assert counts(marks) == {"first": 3, "second": 4}


def test_a_cached_chain_asks_the_control_plane_once(
    admin: Client, write_pipeline: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain's keys can be looked up only one at a time (each depends on the step before):
    a re-run gets its pipeline's cache entries in one call and looks no key up; a run whose
    steps are not cached looks up the keys it does not find there."""
    target = write_pipeline(
        """
        @funade.step
        def inc(x: int) -> int:
            return x + 1

        @funade.pipeline
        def flow() -> None:
            x = inc(0)
            for _ in range(9):
                x = inc(x)
        """
    )
    calls: dict[str, int] = {}
    for name in ("cache_of_pipeline", "cache_lookup", "cache_lookup_many"):
        original = getattr(Client, name)

        def counted(*args: Any, _name: str = name, _call: Any = original, **kw: Any) -> Any:
            calls[_name] = calls.get(_name, 0) + 1
            return _call(*args, **kw)

        monkeypatch.setattr(Client, name, counted)
    first = run_pipeline(target, client=admin)
    assert set(states(first).values()) == {"succeeded"}
    assert calls == {"cache_of_pipeline": 1, "cache_lookup": 10}
    calls.clear()
    again = run_pipeline(target, client=admin)
    assert set(states(again).values()) == {"cached"}
    assert [s.outputs["output"]["value"] for s in again.steps] == list(range(1, 11))
    assert calls == {"cache_of_pipeline": 1}


def test_resume_after_fixing_the_code_reuses_what_succeeded(
    admin: Client, write_pipeline: Write, marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKS", str(marks))
    broken = """
    @funade.step(secrets={"MARKS": "env:MARKS"})
    def prepare() -> int:
        with open(os.environ["MARKS"], "a") as f:
            f.write("prepare\\n")
        return 20

    @funade.step(secrets={"MARKS": "env:MARKS"})
    def train(x: int) -> int:
        with open(os.environ["MARKS"], "a") as f:
            f.write("train\\n")
        return x // DIVISOR

    @funade.step(secrets={"MARKS": "env:MARKS"})
    def side() -> int:
        with open(os.environ["MARKS"], "a") as f:
            f.write("side\\n")
        return 1

    @funade.step
    def report(x: int, y: int) -> int:
        return x + y

    @funade.pipeline
    def flow() -> None:
        report(train(prepare()), side())
    """
    target = write_pipeline(broken.replace("DIVISOR", "0"))
    run = run_pipeline(target, client=admin, use_cache=False)
    assert states(run) == {
        "prepare": "succeeded",
        "train": "failed",
        "side": "succeeded",
        "report": "upstream_failed",
    }
    train = next(s for s in run.steps if s.instance == "train")
    assert train.error == "ZeroDivisionError: integer division or modulo by zero"
    write_pipeline(broken.replace("DIVISOR", "4"))
    resumed = resume_run(run.id, client=admin)
    assert resumed.id == run.id
    assert resumed.state == "succeeded", (
        resumed.reason,
        [(s.instance, s.error) for s in resumed.steps],
    )
    assert resumed.attempt == 2
    assert {s.instance: s.outputs.get("output", {}).get("value") for s in resumed.steps} == {
        "prepare": 20,
        "train": 5,
        "side": 1,
        "report": 6,
    }
    assert counts(marks) == {"prepare": 1, "side": 1, "train": 2}
    # The failed attempt stays readable: its error, its log with the traceback, its number.
    train = next(s for s in resumed.steps if s.instance == "train")
    assert (train.state, train.attempt, train.run_attempt) == ("succeeded", 2, 2)
    [earlier] = train.history
    assert (earlier["run_attempt"], earlier["attempt"], earlier["state"]) == (1, 1, "failed")
    assert earlier["error"] == "ZeroDivisionError: integer division or modulo by zero"
    logs = admin.run_logs(run.id, step="train")  # the second attempt printed nothing
    assert logs.startswith("==> train (run attempt 1) <==\nTraceback"), logs
    assert logs.rstrip().endswith("ZeroDivisionError: integer division or modulo by zero")
    assert resumed.duration_seconds is not None
    assert resumed.started_at is not None
    assert resumed.finished_at is not None
    this_attempt = (resumed.finished_at - resumed.started_at).total_seconds()
    assert resumed.duration_seconds > this_attempt, "the first attempt's time counts too"


def test_kill_9_of_the_runner_then_resume_completes_without_repeating_steps(
    admin: Client, write_pipeline: Write, marks: Path, admin_key: str, app_url: str
) -> None:
    target = write_pipeline(
        f"""
        @funade.step
        def link(i: int, prev: int) -> int:
            with open({str(marks)!r}, "a") as f:
                f.write(f"link{{i}}\\n")
            time.sleep(0.4)
            return prev + 1

        @funade.pipeline
        def flow() -> None:
            value = 0
            for i in range(6):
                value = link(i, value)
        """
    )
    env = os.environ | {"FUNADE_URL": app_url, "FUNADE_API_KEY": admin_key}
    env["FUNADE_HOME"] = str(admin.settings.home)
    runner = subprocess.Popen(
        [sys.executable, "-m", "funade", "pipeline", "run", target, "--no-logs"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while counts(marks).get("link2", 0) == 0:
        assert time.monotonic() < deadline, "the run did not get going"
        assert runner.poll() is None
        time.sleep(0.05)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    # The zygote sees its runner gone and kills the step it was running: nothing goes on.
    time.sleep(1.0)
    settled = dict(counts(marks))
    time.sleep(0.6)
    assert counts(marks) == settled
    (run_id,) = [r.id for r in admin.list_runs().items]
    before = admin.get_run(run_id)
    assert before.state == "running"  # as the killed runner left it
    finished_before = {s.instance for s in before.steps if s.state == "succeeded"}
    assert {"link", "link-2"} <= finished_before

    resumed = resume_run(run_id, client=admin)
    assert resumed.state == "succeeded", (
        resumed.reason,
        [(s.instance, s.error) for s in resumed.steps],
    )
    assert resumed.steps[-1].outputs["output"]["value"] == 6
    ran = counts(marks)
    ids = ["link", *[f"link-{i}" for i in range(2, 7)]]
    for i, instance in enumerate(ids):
        expected = 1 if instance in finished_before else ran[f"link{i}"]
        assert ran[f"link{i}"] == expected, (instance, ran)
        assert ran[f"link{i}"] <= 2


def test_resume_refuses_a_run_whose_runner_is_alive_or_that_succeeded(
    admin: Client, write_pipeline: Write
) -> None:
    target = write_pipeline(
        """
        @funade.step
        def one() -> int:
            return 1

        @funade.pipeline
        def flow() -> None:
            one()
        """
    )
    run = run_pipeline(target, client=admin)
    from funade.errors import ConflictError

    with pytest.raises(ConflictError, match=f"Run {run.id} succeeded; there is nothing to resume"):
        resume_run(run.id, client=admin)


def test_cancel_stops_the_running_step(admin: Client, write_pipeline: Write) -> None:
    target = write_pipeline(
        """
        @funade.step
        def slow() -> int:
            time.sleep(60)
            return 1

        @funade.step
        def later(x: int) -> int:
            return x

        @funade.pipeline
        def flow() -> None:
            later(slow())
        """
    )
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(run_pipeline(target, client=admin)))
    thread.start()
    deadline = time.monotonic() + 30
    while True:
        items = admin.list_runs().items
        if items and any(s.state == "running" for s in admin.get_run(items[0].id).steps):
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    admin.cancel_run(items[0].id)
    thread.join(30)
    (run,) = result
    assert run.state == "cancelled"  # type: ignore[attr-defined]
    assert states(run) == {"slow": "cancelled", "later": "cancelled"}


def test_a_running_steps_output_is_readable_while_it_runs(
    admin: Client, write_pipeline: Write, marks: Path
) -> None:
    """The runner reports a running step's new output with its next report (within a second
    or so), so the run's logs show it before the step ends; then its whole log replaces it."""
    target = write_pipeline(
        f"""
        @funade.step
        def train() -> int:
            print("epoch 1 loss 0.50", flush=True)
            deadline = time.monotonic() + 30
            while not os.path.exists({str(marks.parent / "go")!r}) and time.monotonic() < deadline:
                time.sleep(0.05)
            print("epoch 2 loss 0.25", flush=True)
            return 2

        @funade.pipeline
        def flow() -> None:
            train()
        """
    )
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(run_pipeline(target, client=admin)))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            items = admin.list_runs().items
            steps = admin.get_run(items[0].id).steps if items else []
            logs = admin.run_logs(items[0].id, step="train") if steps else ""
            if "epoch 1" in logs:
                break
            assert time.monotonic() < deadline, "the running step's output never showed"
            time.sleep(0.1)
        assert logs == "epoch 1 loss 0.50\n"
        assert states(admin.get_run(items[0].id)) == {"train": "running"}
    finally:
        (marks.parent / "go").touch()
        thread.join(30)
    (run,) = result
    assert states(run) == {"train": "succeeded"}
    assert admin.run_logs(run.id, step="train") == "epoch 1 loss 0.50\nepoch 2 loss 0.25\n"  # type: ignore[attr-defined]


def test_a_wrong_return_type_or_an_unstorable_output_fails_clearly(
    admin: Client, write_pipeline: Write
) -> None:
    target = write_pipeline(
        """
        @funade.step(retries=3)
        def wrong() -> int:
            return "seven"

        @funade.step(retries=3)
        def unstorable() -> object:
            return (x for x in range(3))

        @funade.pipeline
        def flow() -> None:
            wrong()
            unstorable()
        """
    )
    run = run_pipeline(target, client=admin)
    errors = {s.instance: (s.attempt, s.error) for s in run.steps}
    attempt, message = errors["wrong"]
    assert attempt == 1  # not retried: it would fail the same way
    assert message.startswith(
        "pipeline 'flow', step 'wrong' returned str for output 'output', which is declared int."
    )
    attempt, message = errors["unstorable"]
    assert attempt == 1
    assert "pipeline 'flow', step 'unstorable', output 'output'" in message
    assert "generator" in message


def test_secrets_are_resolved_for_the_step_and_not_stored(
    admin: Client, write_pipeline: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRD_TOKEN", "s3cr3t-value")
    secret_file = tmp_path / "db-password"
    secret_file.write_text("hunter2\n")
    target = write_pipeline(
        f"""
        @funade.step(secrets={{"TOKEN": "env:PRD_TOKEN", "DB": "file:{secret_file}"}},
                     env={{"MODE": "strict"}})
        def uses() -> list[int]:
            return [len(os.environ["TOKEN"]), len(os.environ["DB"]), len(os.environ["MODE"])]

        @funade.step(secrets={{"X": "env:NOT_SET_ANYWHERE"}})
        def missing() -> int:
            return 1

        @funade.pipeline
        def flow() -> None:
            uses()
            missing()
        """
    )
    run = run_pipeline(target, client=admin)
    found = {s.instance: s for s in run.steps}
    assert found["uses"].outputs["output"]["value"] == [12, 7, 6]
    assert found["missing"].state == "failed"
    assert found["missing"].error == (
        "pipeline 'flow', step 'missing': secret X refers to the environment variable "
        "NOT_SET_ANYWHERE, which is not set. Set NOT_SET_ANYWHERE where the runner runs."
    )
    stored = admin.get_run(run.id, spec=True)
    assert "s3cr3t-value" not in stored.model_dump_json()
    assert "hunter2" not in stored.model_dump_json()


ENVIRONMENTS = """
defaults:
  steps:
    "*": {retries: 1}
environments:
  dev:
    params: {rows: 10}
  prd:
    params: {rows: 1000}
    pipeline: {max_parallel: 8}
    steps:
      count: {timeout: 30m}
"""


def test_environment_config_sets_params_and_options(
    admin: Client, write_pipeline: Write, tmp_path: Path
) -> None:
    target = write_pipeline(
        """
        @funade.step
        def count(rows: int) -> int:
            return rows

        @funade.pipeline
        def flow(rows: int = 1) -> None:
            count(rows)
        """
    )
    (tmp_path / "code" / "funade.yaml").write_text(ENVIRONMENTS)
    dev = run_pipeline(target, client=admin, env="dev")
    assert dev.params == {"rows": 10}
    assert dev.env == "dev"
    prd = admin.get_run(run_pipeline(target, client=admin, env="prd").id, spec=True)
    assert prd.params == {"rows": 1000}
    assert prd.spec is not None
    assert prd.spec["max_parallel"] == 8
    assert prd.spec["nodes"][0]["options"]["timeout"] == 1800
    assert prd.spec["nodes"][0]["options"]["retries"] == 1
    given = run_pipeline(target, client=admin, env="prd", text_params={"rows": "5"})
    assert given.params == {"rows": 5}

    with pytest.raises(
        InvalidInputError, match=r"environment 'stg' is not in funade.yaml \(it has: dev, prd\)"
    ):
        run_pipeline(target, client=admin, env="stg")
    with pytest.raises(InvalidInputError, match="parameter 'rows' = 'many'"):
        run_pipeline(target, client=admin, text_params={"rows": "many"})
    with pytest.raises(InvalidInputError, match="has no parameter 'colour'"):
        run_pipeline(target, client=admin, params={"colour": "red"})
    assert len(admin.list_runs().items) == 3  # nothing was recorded for the refused ones


def test_failure_and_slo_breach_are_notified(
    admin: Client, write_pipeline: Write, receiver: Receiver
) -> None:
    target = write_pipeline(
        f"""
        @funade.step
        def slow() -> int:
            time.sleep(0.8)
            raise RuntimeError("model did not converge")

        @funade.pipeline(max_duration=0.3, notify=[
            {{"url": {receiver.url!r}, "kind": "json", "on": ["failure", "slo_breach"]}},
            {{"url": {receiver.url!r}, "kind": "slack", "on": ["failure"]}},
        ])
        def flow() -> None:
            slow()
        """
    )
    run = run_pipeline(target, client=admin)
    assert run.slo_breached is True
    events = [b.get("event") for b in receiver.bodies]
    assert events.count("slo_breach") == 1
    assert events.count("failure") == 1
    failure = next(b for b in receiver.bodies if b.get("event") == "failure")
    assert failure["run_id"] == str(run.id)
    assert failure["url"] == f"{admin.url}/runs/{run.id}?project=default", "the dashboard's page"
    breach = next(b for b in receiver.bodies if b.get("event") == "slo_breach")
    assert 0.3 < breach["duration_seconds"] < 5, breach
    assert re.search(r"running for 0\.[3-9]s, over its 0\.3s limit", breach["message"]), breach
    assert failure["failed_steps"] == ["slow"]
    assert "model did not converge" in failure["message"]
    slack = [b for b in receiver.bodies if "blocks" in b]
    assert len(slack) == 1
    assert "failed" in slack[0]["text"]


def test_numpy_scalars_are_stored_as_numbers_that_conditions_compare(
    admin: Client, write_pipeline: Write
) -> None:
    target = write_pipeline(
        """
        import numpy as np

        @funade.step
        def score() -> float:
            return np.float64(0.75)

        @funade.step
        def count() -> int:
            return np.int64(3)

        @funade.step
        def publish(n: int) -> int:
            return n

        @funade.pipeline
        def flow() -> None:
            with funade.when(score() > 0.5):
                publish(count())
        """
    )
    run = run_pipeline(target, client=admin)
    assert states(run) == {"score": "succeeded", "count": "succeeded", "publish": "succeeded"}
    outputs = {s.instance: s.outputs["output"] for s in run.steps}
    assert outputs["score"]["value"] == 0.75
    assert outputs["score"]["inline"] is True
    assert outputs["publish"]["value"] == 3


def test_finished_attempts_leave_no_files_behind(admin: Client, write_pipeline: Write) -> None:
    """Each attempt's directory (its result, its outputs, the files its inputs were unpacked
    to) is removed once the attempt has ended, whether it succeeded or failed."""
    target = write_pipeline(
        """
        @funade.step(secrets={"OUT": "env:OUT"})
        def folder() -> Path:
            out = Path(os.environ["OUT"]) / "folder"
            out.mkdir(parents=True, exist_ok=True)
            (out / "f.txt").write_text("hi")
            return out

        @funade.step
        def read(d: Path) -> int:
            return len((d / "f.txt").read_text())

        @funade.step
        def small() -> int:
            return 1

        @funade.step
        def fails(n: int) -> int:
            raise ValueError("no")

        @funade.pipeline
        def flow() -> None:
            read(folder())
            fails(small())
        """
    )
    os.environ["OUT"] = str(Path(target.partition(":")[0]).parent)
    try:
        run = run_pipeline(target, client=admin)
    finally:
        del os.environ["OUT"]
    assert states(run) == {
        "folder": "succeeded",
        "read": "succeeded",
        "small": "succeeded",
        "fails": "failed",
    }
    steps = admin.settings.home / "runs" / str(run.id) / "attempt-1" / "steps"
    assert steps.is_dir()
    assert [p for p in steps.rglob("*") if p.parent != steps] == []
