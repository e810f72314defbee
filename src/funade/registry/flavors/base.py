"""The interface every flavor implements: how one framework's models are saved and loaded.

A flavor writes a model into a directory (the *package*, later packed into one content-addressed
tar blob) and loads it back. Everything a flavor loads is handed to it as named tensors
(``dict[str, numpy.ndarray]``, the Open Inference Protocol's shape of data, in the signature's
input order) and it answers in kind; turning a user's DataFrame, array or list into tensors is
``registry.signature``'s job.

Flavor modules import their framework lazily (inside functions) through ``require``, so funade's
core never needs scikit-learn, ONNX or pandas installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError

from funade.errors import InvalidArtifactError, InvalidInputError, ModelLoadError
from funade.registry.manifest import REBUILD
from funade.registry.tensors import Tensors

if TYPE_CHECKING:
    from funade.registry.signature import Signature

__all__ = [
    "Flavor",
    "LoadedModel",
    "PackageFile",
    "Tensors",
    "as_batch",
    "check_options",
    "load_failure",
    "missing_file",
    "parse_metadata",
    "require",
]


@runtime_checkable
class LoadedModel(Protocol):
    """A model in memory, ready to predict."""

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], outputs: Collection[str] | None = None
    ) -> Tensors:
        """Named input tensors in, named output tensors out (first dimension is the batch).

        ``outputs`` names the outputs wanted (None: all); a flavor that can compute only those
        (a scikit-learn model skipping ``predict_proba``) does, others may give more."""
        ...

    @property
    def native(self) -> object:
        """The framework's own object (an estimator, an InferenceSession, the user's class)."""
        ...


@dataclass(frozen=True)
class PackageFile:
    """The start of one file of a package, as the control plane sees it before storing it."""

    head: bytes
    """The first bytes of the file (up to 64 KiB)."""
    size: int
    """The file's full size in bytes, from the manifest."""

    @property
    def complete(self) -> bool:
        """True when ``head`` is the whole file."""
        return len(self.head) == self.size


class Flavor(Protocol):
    """Saves and loads one kind of model."""

    name: ClassVar[str]
    extra: ClassVar[str]
    """The pip extra that installs what the flavor needs, e.g. ``"sklearn"``."""

    def matches(self, model: object) -> bool:
        """True if this flavor knows how to save ``model``."""
        ...

    def save(self, model: object, path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``model`` into the empty directory ``path``; return JSON-able flavor metadata
        that ``load`` receives back (file names, serialization, method names...).

        Raise ``InvalidInputError`` (field ``options.<name>``) for options it does not take.
        """
        ...

    def requirements(self, path: Path, metadata: Mapping[str, Any]) -> list[str]:
        """Names of the distributions (as pip knows them) the saved model needs to load."""
        ...

    def load(
        self, path: Path, metadata: Mapping[str, Any], signature: Signature | None
    ) -> LoadedModel:
        """Load the model that ``save`` wrote into ``path``. ``signature`` tells how the user
        passes inputs (None while a package without a sample input is being built)."""
        ...

    def declared_signature(self, model: LoadedModel) -> Signature | None:
        """The signature a loaded model declares itself (an ONNX graph does), or None."""
        ...

    def wrap(
        self, model: object, metadata: Mapping[str, Any], signature: Signature | None
    ) -> LoadedModel | None:
        """The in-memory ``model`` behind the same interface as ``load``'s answer, so a package
        can be checked to predict exactly as the model it was saved from; None when the saved
        file is the model itself, byte for byte (nothing to compare)."""
        ...

    def runs_code(self, metadata: Mapping[str, Any]) -> bool:
        """Whether loading a package of this flavor (with this metadata) runs code that came
        with it (a pickle, a class's source): deploying one needs the deploy-code scope."""
        ...

    def check_files(self, files: Mapping[str, PackageFile], metadata: Mapping[str, Any]) -> None:
        """Check, without executing any of it, that the package's files are what ``load`` needs.

        ``files`` maps every file of the package to its first bytes and size. Raise
        ``InvalidArtifactError`` naming the file and the fix. The control plane calls this when a
        version is registered, so a malformed package is refused before anything points at it.
        """
        ...


def as_batch(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A 0-d or 1-d array as a batch of one row, anything else unchanged."""
    return np.atleast_1d(array)


def require(module: str, *, extra: str, needed_by: str) -> ModuleType:
    """Import ``module``, or say which extra installs it (``needed_by`` names who needs it)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ModelLoadError(
            f"{needed_by} needs the Python package '{module}', which is not installed ({exc}).",
            field="extra",
            value=extra,
            fix=f"Install it with: pip install 'funade[{extra}]'",
        ) from exc


def check_options(options: Mapping[str, Any], known: Mapping[str, str], *, flavor: str) -> None:
    """Refuse options a flavor does not take; ``known`` maps each option to what it does."""
    for key in options:
        if key not in known:
            listing = "; ".join(f"{k}: {v}" for k, v in known.items()) or "none"
            raise InvalidInputError(
                f"The {flavor} flavor has no option '{key}'.",
                field=f"options.{key}",
                value=options[key],
                fix=f"Use the options it has ({listing}).",
            )


M = TypeVar("M", bound=BaseModel)


def parse_metadata(
    model: type[M], metadata: Mapping[str, Any], *, flavor: str, on_server: bool = False
) -> M:
    """``metadata`` validated as the flavor's ``model``; a bad one is an invalid artifact on the
    server and a load failure on a replica."""
    try:
        return model.model_validate(dict(metadata))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "flavor_metadata"
        message = f"The {flavor} metadata in funade.json is invalid at '{where}': {first['msg']}."
        if on_server:
            raise InvalidArtifactError(
                message, field="artifact", value="funade.json", fix=REBUILD
            ) from None
        raise ModelLoadError(message, field="flavor_metadata", value=where, fix=REBUILD) from None


def missing_file(name: str, flavor: str) -> InvalidArtifactError:
    """The error for a package that lacks a file its flavor needs."""
    return InvalidArtifactError(
        f"The {flavor} package has no file '{name}'.",
        field="artifact",
        value=name,
        fix=REBUILD,
    )


def load_failure(flavor: str, file: str, exc: BaseException, fix: str) -> ModelLoadError:
    """The error for a framework that failed to load ``file``: names file, flavor and cause."""
    return ModelLoadError(
        f"Could not load the {flavor} model from '{file}': {type(exc).__name__}: {exc}",
        field="flavor",
        value=flavor,
        fix=fix,
    )
