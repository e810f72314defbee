"""The deployment commands against a control plane with a running controller."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from funade.cli.deployments import parse_duration, parse_env, parse_steps, parse_weights
from funade.errors import InvalidInputError
from tests.cli.conftest import Result
from tests.deploy.conftest import Plane
from tests.serving.models import Arithmetic


@pytest.fixture
def remote(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> Plane:
    monkeypatch.setenv("FUNADE_URL", plane.url)
    monkeypatch.setenv("FUNADE_API_KEY", plane.client._http.headers["authorization"][7:])
    return plane


def test_deploy_canary_traffic_rollback_and_delete(
    remote: Plane, cli: Callable[..., Result]
) -> None:
    remote.log(Arithmetic())
    first = cli("deploy", "calc")
    assert first.code == 0, first.err
    assert "direct to revision 1" in first.out
    assert "calc: rev-1 100%" in first.out

    remote.log(Arithmetic())
    canary = cli(
        "deploy",
        "calc",
        "--version",
        "2",
        "--strategy",
        "canary",
        "--steps",
        "50,100",
        "--pause",
        "0.5s",
    )
    assert canary.code == 0, canary.err
    assert "verified; canary at 50%" in canary.out
    assert "calc: rev-2 100%" in canary.out
    unchanged = cli("deploy", "calc", "--version", "2")
    assert unchanged.code == 0, unchanged.err
    assert len(remote.client.get_deployment("calc").revisions) == 2, "nothing new to roll out"

    split = cli("traffic", "calc", "rev-1=80", "rev-2=20")
    assert split.out.startswith("calc: traffic rev-2 100% → rev-1 80%, rev-2 20%\n")
    listed = cli("deployments", "list")
    assert "calc" in listed.out
    assert json.loads(cli("deployments", "list", "--json").out)[0]["traffic"] == {"1": 80, "2": 20}
    shown = json.loads(cli("deployments", "show", "calc", "--json").out)
    assert [r["status"] for r in shown["revisions"]] == ["verified", "verified"]
    status = cli("rollout", "status", "calc")
    assert "Rollout 2 of calc: canary to revision 2" in status.out
    assert "succeeded" in status.out

    cli("traffic", "calc", "rev-2=100")
    back = cli("rollback", "calc")
    assert back.code == 0, back.err
    assert "rollback from revision 2" in back.out
    said = " ".join(back.out.split())
    assert "calc: traffic rev-2 100% → rev-1 100% No gateway is running" in said, said
    assert remote.client.get_deployment("calc").traffic == {1: 100}

    aborting = cli("rollout", "abort", "calc")
    assert aborting.code == 2
    assert "no rollout in progress" in aborting.err
    gone = cli("deployments", "delete", "calc", "--yes")
    assert "replicas drain" in gone.out


def test_bad_arguments_name_the_option() -> None:
    with pytest.raises(InvalidInputError, match="'soon' is not a duration") as info:
        parse_duration("soon", "pause")
    assert info.value.field == "pause"
    assert parse_duration("2m", "pause") == 120.0
    assert parse_steps("10, 50,100") == [10, 50, 100]
    with pytest.raises(InvalidInputError, match="not a list of percentages"):
        parse_steps("10,half")
    assert parse_weights(["rev-3=90", "4=10"]) == {3: 90, 4: 10}
    with pytest.raises(InvalidInputError, match="'rev-x=5' is not a revision weight"):
        parse_weights(["rev-x=5"])
    with pytest.raises(InvalidInputError, match="--env 'MODE' is not KEY=VALUE") as env:
        parse_env(["MODE"])
    assert env.value.field == "env"
    assert parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}


def test_every_runtime_option_reaches_the_revision(
    remote: Plane, cli: Callable[..., Result]
) -> None:
    remote.log(Arithmetic())
    options = ["--max-latency-ms", "2", "--timeout-ms", "5000", "--max-body-bytes", "100000"]
    options += ["--widen-datatypes", "--env", "MODE=fast", "--workers", "2", "--no-wait"]
    made = cli("deploy", "calc", *options, "--no-key")
    assert made.code == 0, made.err
    runtime = remote.client.get_deployment("calc").revisions[-1].runtime
    wanted = {"max_latency_ms": 2, "timeout_ms": 5000, "max_body_bytes": 100000, "workers": 2}
    assert {k: runtime[k] for k in wanted} == wanted
    assert runtime["widen_datatypes"] is True
    assert runtime["env"] == {"MODE": "fast"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--workers", "0"], "runtime.workers"),  # 0 is sent, not taken for 'not given'
        (["--replicas", "0"], "between 1 and 32"),
        (["--timeout-ms", "1e9"], "less than or equal to 3600000"),
        (["--env", "PYTHONPATH=/tmp"], "PYTHONPATH"),
        (["--env", "=x"], "--env '=x' is not KEY=VALUE"),
    ],
)
def test_bad_runtime_options_are_refused_and_nothing_is_stored(
    remote: Plane, cli: Callable[..., Result], options: list[str], message: str
) -> None:
    remote.log(Arithmetic())
    refused = cli("deploy", "calc", *options, "--no-wait", "--no-key")
    assert refused.code == 2, refused.out
    assert message in refused.err
    assert remote.client.list_deployments() == []
