"""The model side of the registry: flavors, signatures, golden examples, lineage, packages.

Each name is imported on first use: the control plane imports ``funade.registry.service`` (the
store's side, no numpy) to answer its routes, and a package's flavors, signatures and golden
examples (numpy, pydantic models) only when one is registered, compared or loaded.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from funade.registry.flavors import FLAVOR_NAMES, detect_flavor, get_flavor
    from funade.registry.golden import compare_outputs, make_golden_examples
    from funade.registry.lineage import capture_lineage
    from funade.registry.model import Model
    from funade.registry.package import (
        MANIFEST_NAME,
        Manifest,
        build_package,
        check_package_members,
        load_package,
    )
    from funade.registry.signature import Signature, TensorSpec, infer_signature

_LAZY = {
    "FLAVOR_NAMES": "funade.registry.flavors",
    "detect_flavor": "funade.registry.flavors",
    "get_flavor": "funade.registry.flavors",
    "compare_outputs": "funade.registry.golden",
    "make_golden_examples": "funade.registry.golden",
    "capture_lineage": "funade.registry.lineage",
    "Model": "funade.registry.model",
    "MANIFEST_NAME": "funade.registry.package",
    "Manifest": "funade.registry.package",
    "build_package": "funade.registry.package",
    "check_package_members": "funade.registry.package",
    "load_package": "funade.registry.package",
    "Signature": "funade.registry.signature",
    "TensorSpec": "funade.registry.signature",
    "infer_signature": "funade.registry.signature",
}

__all__ = [
    "FLAVOR_NAMES",
    "MANIFEST_NAME",
    "Manifest",
    "Model",
    "Signature",
    "TensorSpec",
    "build_package",
    "capture_lineage",
    "check_package_members",
    "compare_outputs",
    "detect_flavor",
    "get_flavor",
    "infer_signature",
    "load_package",
    "make_golden_examples",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
