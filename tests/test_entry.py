"""The `funade` entry point: `funade serve` holds cyclic collections from its first import."""

from __future__ import annotations

import gc
import sys

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
