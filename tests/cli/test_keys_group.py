"""`funade keys create --group`: a group token with its try-it link and a QR code in the
terminal; `--allow` limits where a key works from; `keys list --kind group` shows the counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from funade.cli.keys import qr_text
from tests.cli.conftest import Result


@pytest.fixture
def remote(app_url: str, admin_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)


def test_a_group_token_prints_its_try_link_and_a_qr_code(
    remote: None, app_url: str, cli: Callable[..., Result]
) -> None:
    made = cli(
        "keys",
        "create",
        "Group 1",
        "--group",
        "--deployment",
        "digits",
        "--expires-in",
        "8h",
        "--allow",
        "10.0.0.0/8",
        "--allow",
        "192.168.1.7",
    )
    assert made.code == 0, made.err
    lines = made.out.splitlines()
    said = " ".join(made.out.split())  # rich wraps long lines at the terminal's width
    assert said.startswith("Created group token ")
    assert "deployment digits" in said
    assert "only from 10.0.0.0/8 192.168.1.7" in said
    key = next(line for line in lines if line.startswith("fnd_"))
    host = app_url.split("//")[1].split(":")[0]
    url = f"http://{host}:8480/try/digits#key={key}"
    assert url in lines
    assert qr_text(url) in made.out  # the same code the dashboard shows, in half blocks
    assert "█" in made.out
    assert "▀" in made.out

    listed = json.loads(cli("keys", "list", "--kind", "group", "--json").out)
    assert [(k["name"], k["kind"], k["deployment"], k["project"]) for k in listed] == [
        ("Group 1", "group", "digits", "default")
    ]
    assert listed[0]["scopes"] == ["predict"]
    assert listed[0]["allow_cidrs"] == ["10.0.0.0/8", "192.168.1.7"]
    expires = datetime.fromisoformat(listed[0]["expires_at"])
    assert timedelta(hours=7, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=8)
    assert listed[0]["predictions"] == 0
    assert cli("keys", "list", "--kind", "group").code == 0
    keys = json.loads(cli("keys", "list", "--kind", "key", "--json").out)
    assert "Group 1" not in [k["name"] for k in keys]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group", "--deployment", "digits"], "A group token needs --expires-in"),
        (["--group", "--expires-in", "8h"], "A group token needs --deployment"),
        ([], "Give the key at least one --scope."),
        (["--scope", "read", "--allow", "nowhere"], "'nowhere' is not an IP address or network"),
    ],
)
def test_bad_group_options_are_one_clear_line(
    remote: None, cli: Callable[..., Result], args: list[str], message: str
) -> None:
    refused = cli("keys", "create", "g", *args)
    assert refused.code == 2, refused.out
    assert message in refused.err
    assert "Traceback" not in refused.err + refused.out


def test_an_allowlisted_key_prints_no_try_link(remote: None, cli: Callable[..., Result]) -> None:
    made = cli("keys", "create", "office", "--scope", "read", "--allow", "10.0.0.0/8")
    assert made.code == 0, made.err
    assert made.out.strip().splitlines()[-1].startswith("fnd_")  # the key is the last line
    assert "only from 10.0.0.0/8" in " ".join(made.out.split())


def test_a_try_link_only_this_machine_reaches_is_warned_about(
    remote: None, cli: Callable[..., Result]
) -> None:
    made = cli(
        "keys", "create", "Group 1", "--group", "--deployment", "digits", "--expires-in", "8h"
    )
    assert made.code == 0, made.err
    assert "http://127.0.0.1:8480/try/digits#key=fnd_" in made.out
    said = " ".join(made.err.split())
    assert said.startswith(
        "warning: The try-it link points at http://127.0.0.1:8480, which only this machine "
        "reaches: a phone scanning the code cannot open it. Set `gateway_url` "
        "(FUNADE_GATEWAY_URL) to an address others reach"
    ), made.err


def test_without_a_control_plane_the_link_names_this_machine_and_is_warned_about(
    cli: Callable[..., Result],
) -> None:
    made = cli(  # the API in-process, over its Unix socket (it named the host funade.local)
        "keys", "create", "Group 1", "--group", "--deployment", "digits", "--expires-in", "8h"
    )
    assert made.code == 0, made.err
    assert "http://127.0.0.1:8480/try/digits#key=fnd_" in made.out
    assert "warning: The try-it link points at http://127.0.0.1:8480" in made.err


def test_a_try_link_at_the_gateway_url_others_reach_is_not_warned_about(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNADE_GATEWAY_URL", "http://192.168.1.5:8480")
    made = cli(  # in-process: that API reads the setting
        "keys", "create", "Group 1", "--group", "--deployment", "digits", "--expires-in", "8h"
    )
    assert made.code == 0, made.err
    assert "http://192.168.1.5:8480/try/digits#key=fnd_" in made.out
    assert "warning" not in made.err
