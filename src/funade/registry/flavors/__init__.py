"""The flavor registry: the frameworks funade can save and serve, looked up by name or by model.

Importing this package imports no framework; each flavor imports its own when it is used.
"""

from __future__ import annotations

from funade.errors import UnknownFlavorError
from funade.registry.flavors.base import Flavor, LoadedModel, PackageFile
from funade.registry.flavors.lightgbm import LightGBMFlavor
from funade.registry.flavors.mlflow import MlflowFlavor
from funade.registry.flavors.onnx import OnnxFlavor
from funade.registry.flavors.pyclass import PyClassFlavor
from funade.registry.flavors.sklearn import SklearnFlavor
from funade.registry.flavors.torch import TorchFlavor
from funade.registry.flavors.xgboost import XGBoostFlavor

__all__ = [
    "FLAVOR_NAMES",
    "Flavor",
    "LoadedModel",
    "PackageFile",
    "detect_flavor",
    "get_flavor",
    "loads_code",
]

# In the order detect_flavor tries them: the most specific first (xgboost's and lightgbm's
# estimators are scikit-learn estimators too). A flavor's `matches` looks at a framework only if
# it is already imported, and at a path only on disk, so detection imports nothing.
_FLAVORS: tuple[Flavor, ...] = (
    OnnxFlavor(),
    TorchFlavor(),
    XGBoostFlavor(),
    LightGBMFlavor(),
    SklearnFlavor(),
    MlflowFlavor(),
    PyClassFlavor(),
)
FLAVOR_NAMES: tuple[str, ...] = (
    "sklearn",
    "onnx",
    "python_class",
    "torch",
    "xgboost",
    "lightgbm",
    "mlflow",
)


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``."""
    for flavor in _FLAVORS:
        if flavor.name == name:
            return flavor
    raise UnknownFlavorError(
        f"There is no flavor '{name}'.",
        field="flavor",
        value=name,
        fix=f"Use one of: {', '.join(FLAVOR_NAMES)}.",
    )


def detect_flavor(model: object) -> Flavor:
    """The first flavor that knows how to save ``model``."""
    for flavor in _FLAVORS:
        if flavor.matches(model):
            return flavor
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    raise UnknownFlavorError(
        f"funade does not know how to save a {kind}.",
        field="model",
        value=kind,
        fix=f"Pass flavor= one of {', '.join(FLAVOR_NAMES)}, or wrap the model in a class with "
        "methods load(self, path) and predict(self, inputs) (and save(self, path)) to log it as "
        "a python_class model.",
    )


def loads_code(manifest: dict[str, object]) -> bool:
    """Whether loading the package with ``manifest`` (``funade.json``) runs code that came with
    it; a flavor this funade does not know is taken to."""
    name = manifest.get("flavor")
    metadata = manifest.get("flavor_metadata")
    try:
        flavor = get_flavor(str(name))
    except UnknownFlavorError:
        return True
    return flavor.runs_code(metadata if isinstance(metadata, dict) else {})
