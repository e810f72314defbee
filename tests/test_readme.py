"""The README opens with two commands that work: run the platform with a demo; run the tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, flags=re.S)
    return [
        line.strip() for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")
    ]


def test_readme_opens_with_two_setup_commands() -> None:
    commands = _setup_commands()
    assert len(commands) == 2, commands
    run, test = commands
    assert run.endswith("funade up --demo")
    assert test.endswith(".venv/bin/pytest -n 2")


def test_ci_runs_the_readme_test_command() -> None:
    assert _setup_commands()[1] in (ROOT / ".ci" / "run").read_text()


def test_funade_up_demo_registers_the_example_model(tmp_path: Path) -> None:
    """What the README's first command starts, end to end, as a user would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    env["FUNADE_HOME"] = str(tmp_path / "home")
    env["FUNADE_SANDBOX_DIR"] = os.environ["FUNADE_SANDBOX_DIR"]  # not under /var/lib in tests
    env["COLUMNS"] = "400"
    with subprocess.Popen(
        [sys.executable, "-m", "funade", "up", "--demo", "--port", "0", "--gateway-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as process:
        _check_demo(process, tmp_path)
    assert process.returncode == 0


def _check_demo(process: subprocess.Popen[str], tmp_path: Path) -> None:
    lines: list[str] = []
    url = None
    try:
        deadline = time.monotonic() + 240
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if match := re.search(r"funade is up at (http://\S+)", line):
                url = match.group(1)
            if "Press Ctrl-C" in line:
                break
        output = "".join(lines)
        assert url, output
        assert "Demo: registered churn:1" in output, output
        assert "curl -H 'Authorization: Bearer fnd_" in output, output
        key = json.loads((tmp_path / "home" / "credentials").read_text())["api_key"]
        version = httpx.get(
            f"{url}/api/v1/projects/default/models/churn/versions/production",
            headers={"authorization": f"Bearer {key}"},
        ).json()
        assert version["version"] == 1
        assert version["flavor"] == "sklearn"
        assert version["metrics"]["auc"] > 0.6
        assert version["lineage"]["datasets"]["train"]["digest"].startswith("sha256:")
        # The demo deployed the model behind the gateway; its curl command predicts.
        assert "Demo: deployed churn (revision 1); predict with:" in output, output
        curl = next(line.strip() for line in lines if "/v1/models/churn:predict" in line)
        predict_key = re.search(r"Bearer (fnd_\S+)'", curl).group(1)  # type: ignore[union-attr]
        body = re.search(r"-d '(.*?)'", curl).group(1)  # type: ignore[union-attr]
        gateway = re.search(r"(http://\S+)/v1/models/churn:predict", curl).group(1)  # type: ignore[union-attr]
        answer = httpx.post(
            f"{gateway}/v1/models/churn:predict",
            content=body,
            headers={"authorization": f"Bearer {predict_key}", "content-type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0] in (0, 1)
        assert answer.headers["funade-model-version"] == "churn:1"
        refused = httpx.get(
            f"{url}/api/v1/projects/default/models",
            headers={"authorization": f"Bearer {predict_key}"},
        )
        assert refused.status_code == 403, "the printed key may only predict"
        # The dashboard's one-time sign-in link opens it (once), and shows the demo's model.
        link = re.search(r"Dashboard: (http://\S+)/signin#link=(fndlink_\S+)", output)
        assert link, output
        origin = {"origin": link.group(1)}
        with httpx.Client(base_url=link.group(1), headers=origin) as browser:
            signed = browser.post("/signin", data={"key": link.group(2), "next": "/"})
            assert signed.status_code == 303, signed.text
            overview = browser.get("/")
            assert overview.status_code == 200
            assert "churn" in overview.text
        again = httpx.post(f"{link.group(1)}/signin", data={"key": link.group(2)}, headers=origin)
        assert again.status_code == 401
        assert "already used" in again.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
