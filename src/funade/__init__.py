"""funade: take a model from a laptop to a production web API, and keep it healthy there.

The SDK surface is the names below (a test guards the list)::

    import funade
    version = funade.log_model(model, "churn", sample_input=X[:5])
    model = funade.load_model("churn@production")

    @funade.step
    def train(rows: int) -> float: ...

    @funade.pipeline
    def training(rows: int = 1000) -> None:
        train(rows)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from funade.errors import (
    APIError,
    ArtifactCorruptError,
    AuthenticationError,
    ConflictError,
    DigestMismatchError,
    FunadeError,
    InvalidArtifactError,
    InvalidInputError,
    InvalidNameError,
    ModelLoadError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnknownFlavorError,
)

if TYPE_CHECKING:
    from funade.client import Client
    from funade.pipelines.dsl import pipeline, step, when
    from funade.pipelines.runs import resume_run, run_pipeline
    from funade.registry.images import ImageInput
    from funade.sdk import deploy, load_model, log_model

# Imported on first use, so `import funade` (and every process that imports a funade module, such
# as a model server) does not pay for the HTTP client, the registry and their dependencies.
_LAZY = {
    "Client": "funade.client",
    "ImageInput": "funade.registry.images",
    "deploy": "funade.sdk",
    "load_model": "funade.sdk",
    "log_model": "funade.sdk",
    "pipeline": "funade.pipelines.dsl",
    "step": "funade.pipelines.dsl",
    "when": "funade.pipelines.dsl",
    "run_pipeline": "funade.pipelines.runs",
    "resume_run": "funade.pipelines.runs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'funade' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "APIError",
    "ArtifactCorruptError",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "DigestMismatchError",
    "FunadeError",
    "ImageInput",
    "InvalidArtifactError",
    "InvalidInputError",
    "InvalidNameError",
    "ModelLoadError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "UnknownFlavorError",
    "__version__",
    "deploy",
    "load_model",
    "log_model",
    "pipeline",
    "resume_run",
    "run_pipeline",
    "step",
    "when",
]
