"""funade: take a model from a laptop to a production web API, and keep it healthy there.

The SDK surface is the names below (a test guards the list)::

    import funade
    version = funade.log_model(model, "churn", sample_input=X[:5])
    model = funade.load_model("churn@production")
"""

__version__ = "0.1.0"

from funade.client import Client
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
from funade.registry.images import ImageInput
from funade.sdk import load_model, log_model

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
    "load_model",
    "log_model",
]
