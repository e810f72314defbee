"""The composition root's refusals, through `funade up` (the platform's full start and stop are
exercised by tests/security/test_sigterm.py, tests/test_readme.py and tests/reliability/)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from funade.deploy.controller import ControllerLock
from funade.platform import PlatformBusyError, run_platform
from funade.settings import Settings
from tests.conftest import Result


def test_a_second_platform_over_a_home_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    home = tmp_path / "home"
    held = ControllerLock(home / "controller.lock")
    assert held.acquire()
    try:
        with pytest.raises(PlatformBusyError) as info:
            run_platform(Settings(home=home, port=0, gateway_port=0))
        assert info.value.home == home
        assert info.value.lock == home / "controller.lock"
        assert str(info.value) == (
            f"another `funade up` runs over {home} (it holds {home / 'controller.lock'})"
        )
        monkeypatch.setenv("FUNADE_HOME", str(home))
        done = cli("up", "--port", "0", "--gateway-port", "0")
        assert done.code == 1
        said = "".join(done.err.split())  # the console wraps long lines, even mid-word
        expected = (
            f"Another `funade up` runs over {home} (it holds {home / 'controller.lock'}); stop "
            "it first, or set FUNADE_HOME to another directory."
        )
        assert said == "".join(expected.split())
        assert not (home / "gateway.json").exists(), "no gateway was started"
    finally:
        held.release()
