"""From a model to a working call with a real `funade up` (issue 21, items 2 and 11): `funade
deploy` in another shell finds it over the same home (no FUNADE_URL) and ends with a ready curl
and a predict key for that deployment alone; ``log_model(..., deploy=True)`` does the same from
Python; a model whose loading runs code is refused to a key that may not deploy code."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

import funade
from funade.client import Client
from funade.errors import PermissionDeniedError
from funade.settings import Settings
from funade.store.schema import utcnow
from tests.models import logistic_regression, sample
from tests.security.platform import ROOT, Up, funade_up
from tests.serving.models import Arithmetic


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, sandboxes: Path) -> Iterator[Up]:
    home = tmp_path_factory.mktemp("first-call") / "home"
    with funade_up(home, FUNADE_SANDBOX_DIR=str(sandboxes / "first-call")) as platform:
        with platform.client() as admin:
            funade.log_model(
                logistic_regression(), "lr", sample_input=sample(), client=admin, progress=False
            )
        yield platform


def funade_cli(up: Up, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`funade ARGS` in a shell of its own over the same home, without FUNADE_URL or CI."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_") and k != "CI"}
    environ.update(FUNADE_HOME=str(up.home), COLUMNS="400", **env)
    return subprocess.run(
        [sys.executable, "-m", "funade", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=300,
    )


def test_funade_up_prints_the_export_line_and_leaves_its_note(up: Up) -> None:
    assert f"  export FUNADE_URL={up.url}\n" in up.seen
    note = json.loads((up.home / "up.json").read_text())
    assert note == {"url": up.url, "gateway_url": up.gateway_url, "pid": up.process.pid}


def test_deploy_in_another_shell_finds_funade_up_and_follows_the_rollout(up: Up) -> None:
    done = funade_cli(up, "deploy", "lr")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Using the `funade up` at {up.url} (pid {up.process.pid}" in done.stderr
    assert "no controller" not in done.stdout
    assert "nothing starts" not in done.stdout
    assert "— succeeded" in done.stdout
    assert "lr: rev-1 100%" in done.stdout
    # Not a terminal: no key is made; the curl reads one from the environment.
    assert "No key was made: the output is not a terminal (--key makes one anyway)." in (
        done.stdout
    )
    assert "fnd_" not in done.stdout
    assert '"Authorization: Bearer $FUNADE_PREDICT_KEY"' in done.stdout
    assert "funade keys create lr-app --scope predict --project default --deployment lr" in (
        done.stdout
    )
    with up.client() as admin:
        assert not [k for k in admin.list_keys(project="default") if k.deployment == "lr"]


def _curls(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if line.strip().startswith("curl ")]


def _post(words: list[str]) -> httpx.Response:
    """What a `curl -H … -d BODY URL` line sends, sent."""
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    return httpx.post(words[-1], content=words[words.index("-d") + 1], headers=headers)


def test_deploy_prints_a_ready_curl_with_a_key_for_that_deployment_alone(up: Up) -> None:
    done = funade_cli(up, "deploy", "lr", "--name", "lr-key", "--key", "--key-expires", "8h")
    assert done.returncode == 0, done.stdout + done.stderr
    key = re.search(r"^(fnd_\w{12}_[\w-]+)$", done.stdout, re.M)
    assert key, done.stdout
    assert "predict only, lr-key only, until " in done.stdout
    v1, v2 = _curls(done.stdout)
    assert v1[-1] == f"{up.gateway_url}/v1/models/lr-key:predict"
    assert v2[-1] == f"{up.gateway_url}/v2/models/lr-key/infer"
    answer = _post(v1)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0] in (0, 1)
    answer = _post(v2)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_name"] == "lr-key"
    with up.client() as admin:
        made = next(k for k in admin.list_keys(project="default") if k.deployment == "lr-key")
        assert made.scopes == ["predict"]
        assert made.expires_at is not None
        assert timedelta(hours=7) < made.expires_at - utcnow() <= timedelta(hours=8)
        # Another deployment refuses it.
        v2[-1] = f"{up.gateway_url}/v2/models/lr/infer"
        refused = _post(v2)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"].startswith(
            f"Key {made.name!r} works only for deployment 'lr-key'."
        )
        # It ends with its deployment.
        assert funade_cli(up, "deployments", "delete", "lr-key", "--yes").returncode == 0
        gone = next(
            k for k in admin.list_keys(project="default", include_revoked=True) if k.id == made.id
        )
        assert gone.revoked_at is not None


@pytest.mark.parametrize(
    ("name", "args", "env", "why"),
    [
        ("lr-ci", ["--key"], {"CI": "true"}, "No key was made: CI is set (a key printed into"),
        ("lr-nokey", ["--no-key"], {}, "No key was made (--no-key)."),
    ],
)
def test_no_key_is_made_in_ci_or_when_told(
    up: Up, name: str, args: list[str], env: dict[str, str], why: str
) -> None:
    done = funade_cli(up, "deploy", "lr", "--name", name, *args, **env)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert why in done.stdout
        assert "fnd_" not in done.stdout
        assert len(_curls(done.stdout)) == 2
    finally:
        funade_cli(up, "deployments", "delete", name, "--yes")


def test_a_key_that_may_not_deploy_code_gets_the_refusal_and_its_fix(up: Up) -> None:
    with up.client() as admin:
        funade.log_model(
            Arithmetic(),
            "calc",
            sample_input={"x": np.array([[1.0, 2.0]])},
            client=admin,
            progress=False,
        )
        writer = admin.create_key("writer", ["write"], project="default").key
    done = funade_cli(up, "deploy", "calc", FUNADE_API_KEY=writer)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "Model 'calc' version 1 (python_class) runs code when it is loaded, and key 'writer' "
        in (done.stderr)
    )
    assert "Use a key with the 'deploy-code' scope" in done.stderr
    settings = Settings(home=up.home, api_key=writer)
    with Client(settings=settings) as client, pytest.raises(PermissionDeniedError) as caught:
        funade.log_model(
            Arithmetic(),
            "calc",
            sample_input={"x": np.array([[1.0, 2.0]])},
            client=client,
            progress=False,
            deploy=True,
        )
    assert caught.value.field == "scope"
    assert "deploy-code" in str(caught.value.fix)


def test_log_model_deploys_through_the_running_platform_and_returns_the_call(up: Up) -> None:
    with Client(settings=Settings(home=up.home)) as client:  # no URL: it finds `funade up`
        assert client.running_up is not None
        call = funade.log_model(
            logistic_regression(),
            "sdk-lr",
            sample_input=sample(),
            client=client,
            progress=False,
            deploy=True,
        )
        assert call.version is not None
        assert call.version.ref == "sdk-lr:1"
        assert call.endpoint == f"{up.gateway_url}/v2/models/sdk-lr/infer"
        assert call.key is not None
        answer = httpx.post(
            call.endpoint, json=call.example, headers={"authorization": f"Bearer {call.key}"}
        )
        assert answer.status_code == 200, answer.text
        again = funade.log_model(
            logistic_regression(),
            "sdk-lr",
            sample_input=sample(),
            client=client,
            progress=False,
            deploy="canary",
        )
        assert again.version is not None
        assert again.version.ref == "sdk-lr:2"
        rollout = client.get_deployment("sdk-lr").rollout
        assert rollout is not None
        assert rollout.strategy == "canary"
        assert rollout.state in ("progressing", "succeeded")
        assert again.key is not None
        assert again.key != call.key


def test_log_model_refuses_a_strategy_it_does_not_know(up: Up) -> None:
    client = Client(settings=Settings(home=up.home))
    with client, pytest.raises(funade.InvalidInputError) as caught:
        funade.log_model(
            logistic_regression(),
            "nope",
            sample_input=sample(),
            client=client,
            deploy="sideways",  # type: ignore[call-overload]
        )
    assert caught.value.field == "deploy"
    assert str(caught.value) == (
        "deploy='sideways' is not a way to deploy. Pass deploy=True, or a strategy: 'direct', "
        "'bluegreen' or 'canary'."
    )
    with up.client() as admin:
        assert "nope" not in {m.name for m in admin.list_models().items}, "nothing registered"


def test_a_key_that_may_not_make_keys_gets_the_curl_and_how_to_make_one(up: Up) -> None:
    with up.client() as admin:
        deployer = admin.create_key("deployer", ["write", "deploy-code"], project="default").key
    done = funade_cli(up, "deploy", "lr", "--name", "lr-writer", "--key", FUNADE_API_KEY=deployer)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        said = " ".join(done.stdout.split())
        assert "No key was made: Key 'deployer' " in said, said
        assert "funade keys create lr-writer-app --scope predict --project default" in said
        assert "fnd_" not in done.stdout
        assert len(_curls(done.stdout)) == 2
    finally:
        funade_cli(up, "deployments", "delete", "lr-writer", "--yes")
