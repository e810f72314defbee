"""Helpers for the model server's tests: packages of the fake models in ``tests.serving.models``
built by the registry, and real servers over them on free ports."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from funade.registry.images import ImageInput
from funade.registry.model import Model
from funade.registry.package import Labels, build_package, load_package
from funade.serving.app import create_model_app
from funade.serving.config import ServeConfig
from funade.serving.runtime import Loaded
from tests.servers import serve, serve_front
from tests.serving.models import Arithmetic


def package(
    model: object,
    directory: Path,
    sample: Any,
    image: ImageInput | None = None,
    labels: Labels | None = None,
) -> Path:
    """``model`` saved as a package in ``directory`` (python_class flavor)."""
    build_package(model, directory, sample_input=sample, image=image, labels=labels)
    return directory


def arithmetic_package(directory: Path) -> Path:
    return package(Arithmetic(), directory, {"x": np.array([[1.0, 2.0], [3.0, 4.0]])})


def loaded(directory: Path, name: str = "calc", version: str | None = "1") -> Loaded:
    model: Model = load_package(directory)
    return Loaded(model=model, name=name, version=version, digest=None)


@contextmanager
def running(model: Loaded | Path, ready: bool = True, **options: Any) -> Iterator[tuple[str, Any]]:
    """A real model server on a free port serving ``model``; yields its URL and the app. Served
    as ``funade serve`` serves it by default, on the lean front (inference through its direct
    entry), or on uvicorn (the ASGI entry) with ``FUNADE_TEST_SERVE_SERVER=uvicorn``."""
    target = model if isinstance(model, Loaded) else loaded(model)
    config = ServeConfig(source=target.name, name=target.name, **options)
    app = create_model_app(config, lambda: target)
    server = os.environ.get("FUNADE_TEST_SERVE_SERVER", "lean")
    with serve_front(app) if server == "lean" else serve(app) as url:
        if ready:
            wait_ready(url)
        yield url, app


def wait_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{url} did not become ready in {timeout} s")


def native(app: Any) -> Any:
    """The user's model object behind a running app (to read what it recorded)."""
    runtime = app.state.runtime
    assert runtime.loaded is not None
    return runtime.loaded.model.native


def v2_body(x: Any, **extra: Any) -> dict[str, Any]:
    array = np.asarray(x, dtype=np.float64)
    return {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": list(array.shape), "data": array.tolist()}
        ],
        **extra,
    }
