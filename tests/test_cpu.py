"""The ``cpu_scheduling`` setting (``funade.cpu``): funade's servers run under SCHED_BATCH by
default, Linux's default policy when it is ``normal``: `funade up` itself, the gateway it forks
and the replicas it starts, every thread of each; a policy set from outside is left alone, and a
refusal is logged, not raised."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

import funade
from funade.cpu import apply_cpu_scheduling
from funade.errors import InvalidInputError
from funade.settings import load_settings
from tests.security.platform import funade_up, wait_rollout
from tests.serving.oip import conformance
from tests.serving.oip.echo import NAME, Echo

T = TypeVar("T")

POLICY = {"batch": os.SCHED_BATCH, "normal": os.SCHED_OTHER}


def in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread of its own (a policy is a thread's: the test's stays as it was)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def test_batch_and_normal_switch_the_calling_thread_and_what_it_starts() -> None:
    def work() -> tuple[str, int, int, str, int]:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        said = apply_cpu_scheduling("batch")
        policy = os.sched_getscheduler(0)
        started = in_thread(lambda: os.sched_getscheduler(0))  # inherited
        back = apply_cpu_scheduling("normal")
        return said, policy, started, back, os.sched_getscheduler(0)

    assert in_thread(work) == ("batch", os.SCHED_BATCH, os.SCHED_BATCH, "normal", os.SCHED_OTHER)


def test_a_policy_set_from_outside_is_left_alone() -> None:
    def work() -> tuple[str, int]:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return apply_cpu_scheduling("batch"), os.sched_getscheduler(0)

    assert in_thread(work) == ("left alone (a policy set from outside)", os.SCHED_IDLE)


def test_a_refusal_is_logged_and_serving_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(pid: int, policy: int, param: os.sched_param) -> None:
        raise PermissionError(1, "Operation not permitted")

    real = os.sched_setscheduler

    def work() -> str:
        real(0, os.SCHED_OTHER, os.sched_param(0))  # whatever an earlier test left
        monkeypatch.setattr(os, "sched_setscheduler", refuse)  # as a seccomp profile would
        return apply_cpu_scheduling("batch")

    with caplog.at_level(logging.WARNING, logger="funade"):
        said = in_thread(work)
    assert said == "not applied: [Errno 1] Operation not permitted"
    assert "cpu_scheduling 'batch' not applied: [Errno 1] Operation not permitted" in caplog.text


def test_without_the_policies_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_setscheduler")  # macOS, Windows
    assert apply_cpu_scheduling("batch") == "not supported here"


def test_an_unknown_policy_names_the_setting_and_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FUNADE_CPU_SCHEDULING", "fifo")
    with pytest.raises(InvalidInputError, match="Setting 'cpu_scheduling' is invalid") as info:
        load_settings()
    assert info.value.field == "cpu_scheduling"
    assert "'batch' or 'normal'" in str(info.value)


def _policies(pid: int) -> set[int]:
    """The policy of every thread of ``pid``."""
    return {os.sched_getscheduler(int(task.name)) for task in Path(f"/proc/{pid}/task").iterdir()}


@pytest.mark.parametrize("setting", ["batch", "normal"])
def test_funade_up_its_gateway_and_replicas_run_under_the_setting(
    setting: str, tmp_path: Path, sandboxes: Path
) -> None:
    sandbox = sandboxes / f"cpu-{uuid.uuid4().hex[:8]}"
    env = {"FUNADE_SANDBOX_DIR": str(sandbox)}
    if setting == "normal":
        env["FUNADE_CPU_SCHEDULING"] = "normal"
    with funade_up(tmp_path / "home", **env) as up, up.client() as client:
        funade.log_model(
            Echo(), NAME, sample_input=conformance.SAMPLE, client=client, progress=False
        )
        client.create_deployment(NAME)
        assert wait_rollout(up, NAME)["rollout"]["state"] == "succeeded"  # type: ignore[index]
        (replica,) = up.replica_pids()[NAME]
        wanted = {POLICY[setting]}
        assert _policies(up.process.pid) == wanted
        assert _policies(up.gateway_pid) == wanted
        assert _policies(replica) == wanted
        environ = Path(f"/proc/{replica}/environ").read_bytes().split(b"\0")
        assert f"FUNADE_CPU_SCHEDULING={setting}".encode() in environ
