"""The conformance tests' model, saved as a python_class package: this module's source goes into
the package and a replica loads it without the ``tests`` package, so it imports nothing but the
standard library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAME = "echo"
"""What the model is served (and deployed) as."""


class Echo:
    """Every input back, unchanged, as ``<name>_out``; never raises, so a 5xx is the server's."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {f"{name}_out": value for name, value in inputs.items()}
