"""The `funade` entry point: `funade serve` holds cyclic collections from its first import, and
a command's process ends fast with its status, its output and its atexit handlers."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from funade.entry import main


@pytest.mark.parametrize(("command", "held"), [("serve", True), ("models", False)])
def test_collections_are_held_for_serve_only(
    command: str, held: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["funade", command, "--help"])
    try:
        main()
        assert gc.isenabled() is not held
    finally:
        gc.enable()
    assert f"{command} [OPTIONS]" in capsys.readouterr().out


def _funade(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "funade", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_the_command_ends_its_process_with_its_status_and_all_it_printed(tmp_path: Path) -> None:
    """`funade` (``entry.run``) leaves without Python's teardown, but as a command should: its
    exit status, everything it printed flushed, to a pipe too."""
    env = {**os.environ, "FUNADE_HOME": str(tmp_path / "home")}
    listed = _funade("models", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"items": [], "next_cursor": None}
    missing = _funade("models", "show", "nope", env=env)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: Model 'nope' does not exist in project 'default'.")
    helped = _funade("--help")
    assert helped.returncode == 0
    assert "pipeline" in helped.stdout
    assert _funade("--no-such-option").returncode == 2


EXIT = """
import atexit, sys, threading, time
from pathlib import Path
from funade.entry import _exit

out = Path(sys.argv[1])
atexit.register(lambda: out.with_suffix(".atexit").write_text("ran"))

def late() -> None:
    time.sleep(0.2)
    out.with_suffix(".thread").write_text("done")

if sys.argv[2] == "thread":
    threading.Thread(target=late).start()
print("printed", end="")
_exit(int(sys.argv[3]) if sys.argv[3].isdigit() else sys.argv[3])
"""


@pytest.mark.parametrize(
    ("thread", "code", "status"),
    [("none", "3", 3), ("thread", "0", 0), ("none", "a message", 1)],
)
def test_the_end_runs_atexit_and_waits_for_threads(
    tmp_path: Path, thread: str, code: str, status: int
) -> None:
    out = tmp_path / "marks"
    done = subprocess.run(
        [sys.executable, "-c", EXIT, str(out), thread, code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == status, done.stderr
    assert done.stdout == "printed"
    assert out.with_suffix(".atexit").read_text() == "ran"
    if thread == "thread":
        assert out.with_suffix(".thread").read_text() == "done"
    if not code.isdigit():
        assert done.stderr.strip() == code
