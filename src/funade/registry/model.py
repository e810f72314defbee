"""``Model``: a loaded model version, what ``funade.load_model`` returns."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from funade.errors import InvalidInputError
from funade.registry.signature import Signature, from_tensors, to_tensors
from funade.registry.tensors import Tensors, normalize

if TYPE_CHECKING:
    from funade.registry.flavors.base import LoadedModel
    from funade.registry.package import Manifest


class Model:
    """A model in memory with its manifest: ``predict`` takes what the sample input looked like
    (array, list, DataFrame or dict) and gives an array, or a dict of arrays for several outputs.
    """

    def __init__(self, loaded: LoadedModel, manifest: Manifest) -> None:
        self._loaded = loaded
        self.manifest = manifest
        self.name: str | None = None
        self.version: int | None = None

    @property
    def signature(self) -> Signature:
        return self.manifest.signature

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def native(self) -> object:
        """The framework's own object (an estimator, an InferenceSession, the user's class)."""
        return self._loaded.native

    def predict(self, x: Any, *, output: str | None = None) -> Any:
        """Predict on user input, checked against the signature (``InvalidInputError`` if off).

        Gives one output, like the framework's own ``predict``: the first one the signature
        names (for scikit-learn, ``predict``), or ``output`` (e.g. ``"predict_proba"``).
        ``predict_all`` gives every output.
        """
        name = output or self.signature.outputs[0].name
        known = [spec.name for spec in self.signature.outputs]
        if name not in known:
            raise InvalidInputError(
                f"Model has no output {name!r}.",
                field="output",
                value=name,
                fix=f"Ask for one of {known}.",
            )
        outputs = self._loaded.predict(to_tensors(x, self.signature), [name])
        if name not in outputs:  # the model did not give what its signature declares
            raise InvalidInputError(
                f"The model gave no output {name!r} (it gave {sorted(outputs)}).",
                field="output",
                value=name,
                fix=f"Ask for one of {sorted(outputs)}, or make the model return {name!r}.",
            )
        return normalize(outputs[name], name=name)

    def predict_all(self, x: Any) -> Any:
        """Every output: the array for a one-output model, else a dict of arrays by name."""
        return from_tensors(self._run(to_tensors(x, self.signature)), self.signature)

    def predict_tensors(self, tensors: Mapping[str, npt.NDArray[Any]]) -> Tensors:
        """Named tensors in (checked against the signature), named tensors out."""
        return self._run(to_tensors(dict(tensors), self.signature))

    def predict_conformed(self, inputs: Tensors, outputs: Collection[str] | None = None) -> Tensors:
        """Tensors already checked against the signature (by the model server) in, the
        ``outputs`` asked for (None: all) out."""
        return self._run(inputs, outputs)

    def _run(self, inputs: Tensors, wanted: Collection[str] | None = None) -> Tensors:
        outputs = self._loaded.predict(inputs, wanted)
        return {
            name: normalize(value, name=name)
            for name, value in outputs.items()
            if wanted is None or name in wanted
        }

    def __repr__(self) -> str:
        title = self.name or "unnamed"
        if self.version is not None:
            title += f" v{self.version}"
        inputs = ", ".join(str(s) for s in self.signature.inputs)
        outputs = ", ".join(str(s) for s in self.signature.outputs)
        return f"<Model {title} flavor={self.flavor} inputs=[{inputs}] outputs=[{outputs}]>"
