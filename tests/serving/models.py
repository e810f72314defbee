"""Fake *models* for the model server's tests, saved as real python_class packages.

Each class is saved with the source of this module (the python_class flavor), so a server loads
it the way it loads any user's model, also in another process; this module therefore imports
nothing but the standard library and numpy. Behaviour is steered by input values, never mocks.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HANG = 99.0
"""An input value on which ``Arithmetic`` blocks until released (a hung model call)."""


class Arithmetic:
    """``{"x": (n, 2) float}`` in; ``double`` = 2x and ``total`` = row sums out.

    Records the rows of every call (so tests see batches), raises on a negative input, and blocks
    on ``HANG`` until ``release`` is set (bounded at 10 s).
    """

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()

    def load(self, path: Path) -> None:
        pass

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        x = np.asarray(inputs["x"])
        self.calls.append(len(x))
        if (x < 0).any():
            raise ValueError("negative values are not allowed")
        if (x == HANG).any():
            self.release.wait(10)
        return {"double": x * 2, "total": x.sum(axis=1)}


class Paced:
    """``Arithmetic`` without its hang, that takes as long as its largest value between 1 and 5
    (in seconds): a request with such a value keeps the gateway's merge group for its form busy,
    so requests sent meanwhile queue up and go together."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        x = np.asarray(inputs["x"], dtype=np.float64)
        if (x < 0).any():
            raise ValueError("negative values are not allowed")
        pause = x[(x >= 1) & (x < 5)]
        if pause.size:
            time.sleep(float(pause.max()))
        return {"double": x * 2, "total": x.sum(axis=1)}


class Fixed:
    """A model without a batch dimension: exactly three numbers in, their sum out."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, x: Any) -> Any:
        return np.asarray([np.asarray(x, dtype=np.float64).sum()])


class Brightness:
    """An 'image model': the mean of each image, for inputs of shape (n, 1, 8, 8)."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, images: Any) -> Any:
        return np.asarray(images).reshape(len(images), -1).mean(axis=1)


class WhoAmI:
    """Answers the id of the process that ran it (to tell worker processes apart)."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, x: Any) -> Any:
        return np.full(len(x), os.getpid(), dtype=np.int64)


class Slow:
    """Takes x[0] seconds (at most 5) to answer x, for graceful-shutdown tests."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, x: Any) -> Any:
        time.sleep(min(float(np.asarray(x).reshape(-1)[0]), 5.0))
        return np.asarray(x)


class Drifting:
    """Doubles x, but triples it where FAKE_MODEL_DRIFT is set: a version whose served outputs
    differ from its golden examples (as after a library upgrade in the serving image)."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        x = np.asarray(inputs["x"])
        return {"double": x * (3 if os.environ.get("FAKE_MODEL_DRIFT") else 2)}


class CrashOnLoad:
    """Loads fine, except where FAKE_MODEL_CRASH is set (e.g. in a revision's runtime env)."""

    def load(self, path: Path) -> None:
        if os.environ.get("FAKE_MODEL_CRASH"):
            raise RuntimeError("FAKE_MODEL_CRASH is set")

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"double": np.asarray(inputs["x"]) * 2}


class Picky:
    """Doubles x, and fails on values above FAKE_MODEL_FAIL_ABOVE where that is set: passes
    verification (its golden inputs are small) but errors on live traffic."""

    def load(self, path: Path) -> None:
        pass

    def predict(self, inputs: dict[str, Any]) -> dict[str, Any]:
        x = np.asarray(inputs["x"])
        limit = os.environ.get("FAKE_MODEL_FAIL_ABOVE")
        if limit and (x > float(limit)).any():
            raise ValueError(f"a value is above {limit}")
        return {"double": x * 2}
