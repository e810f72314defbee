"""What a step process leaves, made into its outcome (``pipelines/stepoutputs.py``)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from funade.artifacts import ArtifactCache
from funade.artifacts.digest import sha256_file
from funade.pipelines.engine import Failed, Stopped, Succeeded
from funade.pipelines.stepoutputs import StepOutputs, remove_attempt
from funade.pipelines.task import RESULT
from tests.pipelines.fakes import FakeControlPlane


@pytest.fixture
def plane(tmp_path: Path) -> FakeControlPlane:
    return FakeControlPlane(tmp_path)


@pytest.fixture
def outputs(plane: FakeControlPlane, tmp_path: Path) -> StepOutputs:
    cache = ArtifactCache(tmp_path / "cache", lambda digest: plane.open_artifact(digest))
    return StepOutputs(plane, cache, project="default")


def test_a_stopped_or_timed_out_attempt_says_so_whatever_it_left(
    outputs: StepOutputs, tmp_path: Path
) -> None:
    assert outputs.outcome("a", tmp_path, -9, stopping=True) == Stopped("a")
    failed = outputs.outcome("a", tmp_path, -9, timed_out=True, timeout=600)
    assert failed == Failed("a", "timed out after 10m and was killed")


def test_a_process_that_left_no_result_failed_by_its_signal_or_exit_code(
    outputs: StepOutputs, tmp_path: Path
) -> None:
    killed = outputs.outcome("a", tmp_path, -signal.SIGKILL)
    assert isinstance(killed, Failed)
    assert killed.error == "the step's process was killed by SIGKILL (out of memory?)"
    exited = outputs.outcome("a", tmp_path, 3)
    assert isinstance(exited, Failed)
    assert "exited with code 3 before it finished" in exited.error


def test_a_steps_own_error_keeps_whether_it_may_be_retried(
    outputs: StepOutputs, tmp_path: Path
) -> None:
    (tmp_path / RESULT).write_text(json.dumps({"ok": False, "error": "boom", "retryable": True}))
    assert outputs.outcome("a", tmp_path, 1) == Failed("a", "boom", retryable=True)


def test_small_outputs_stay_inline_and_others_are_uploaded_and_cached(
    outputs: StepOutputs, plane: FakeControlPlane, tmp_path: Path
) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_text("3")
    big.write_bytes(b"model bytes")
    digest = sha256_file(big)
    (tmp_path / RESULT).write_text(
        json.dumps(
            {
                "ok": True,
                "outputs": {
                    "n": {
                        "path": str(small),
                        "digest": "sha256:" + "1" * 64,
                        "kind": "json",
                        "value": 3,
                        "inline": True,
                    },
                    "model": {"path": str(big), "digest": digest, "kind": "pickle", "value": None},
                },
            }
        )
    )
    done = outputs.outcome("a", tmp_path, 0)
    assert isinstance(done, Succeeded)
    assert done.outputs["n"].value == 3
    assert done.outputs["model"].digest == digest
    assert not small.exists()
    assert plane.uploads == {digest: b"model bytes"}
    assert outputs.cache.blob_path(digest).read_bytes() == b"model bytes"


def test_an_output_that_cannot_be_stored_fails_the_step(
    outputs: StepOutputs, plane: FakeControlPlane, tmp_path: Path
) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"x")
    output = {"path": str(blob), "digest": sha256_file(blob), "kind": "pickle"}
    (tmp_path / RESULT).write_text(json.dumps({"ok": True, "outputs": {"m": output}}))
    plane.away = True
    failed = outputs.outcome("a", tmp_path, 0)
    assert isinstance(failed, Failed)
    assert failed.error.startswith("storing its outputs failed: ")


def test_a_log_is_stored_by_digest_unless_it_is_empty_or_the_upload_fails(
    outputs: StepOutputs, plane: FakeControlPlane, tmp_path: Path
) -> None:
    log = tmp_path / "a.log"
    assert outputs.upload_log(log) is None
    log.write_text("")
    assert outputs.upload_log(log) is None
    log.write_text("hello\n")
    assert outputs.upload_log(log) == sha256_file(log)
    plane.away = True
    assert outputs.upload_log(log) is None


def test_a_finished_attempt_leaves_nothing_behind(tmp_path: Path) -> None:
    tidy = tmp_path / "tidy"
    (tidy / "work").mkdir(parents=True)
    (tidy / RESULT).write_text("{}")
    remove_attempt(tidy)
    messy = tmp_path / "messy"
    (messy / "work").mkdir(parents=True)
    (messy / "work" / "input.bin").write_bytes(b"x")
    remove_attempt(messy)
    remove_attempt(tmp_path / "never-made")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
