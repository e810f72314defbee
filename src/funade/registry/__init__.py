"""The model side of the registry: flavors, signatures, golden examples, lineage, packages."""

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
