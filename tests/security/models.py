"""Fake models for the security tests, saved as python_class packages (this module's source goes
into the package, so it imports nothing but the standard library and numpy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def probe(spec: str) -> str:
    """What this process can do, as asked by ``spec`` (``action:argument``): ``read:<path>``,
    ``list:<dir>``, ``write:<path>`` (``ok`` or the error's class), ``env:<NAME>`` (its value, or
    ``<unset>``), ``whoami:`` (``uid:gid``)."""
    action, _, argument = spec.partition(":")
    try:
        if action == "read":
            with open(argument, "rb") as handle:
                handle.read(16)
        elif action == "list":
            os.listdir(argument)
        elif action == "write":
            with open(argument, "ab"):
                pass
        elif action == "env":
            return os.environ.get(argument, "<unset>")
        elif action == "whoami":
            return f"{os.getuid()}:{os.getgid()}"
        else:
            return f"unknown action {action!r}"
    except OSError as exc:
        return type(exc).__name__
    return "ok"


class Probe:
    """``{"ask": [spec, ...]}`` in, ``{"answer": [what probe(spec) says, ...]}`` out: model code
    that tries to reach what it must not."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        asked = np.asarray(inputs["ask"]).reshape(-1)
        texts = [a.decode() if isinstance(a, bytes) else str(a) for a in asked]
        return {"answer": np.array([probe(t) for t in texts], dtype=object)}


SAMPLE = {"ask": np.array(["env:FUNADE_NOTHING_SET_HERE"], dtype=object)}
"""A sample whose answer is the same wherever the model runs (its golden example)."""
