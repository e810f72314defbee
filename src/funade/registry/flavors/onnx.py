"""The ONNX flavor: an ``onnx.ModelProto``, its serialized bytes or a ``.onnx`` file, served with
onnxruntime on the CPU. The graph declares the signature (symbolic dimensions become ``-1``);
outputs must be tensors, so classifiers converted by skl2onnx need ZipMap turned off.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from funade.errors import InvalidArtifactError, InvalidInputError
from funade.registry.flavors.base import (
    LoadedModel,
    PackageFile,
    check_options,
    load_failure,
    missing_file,
    parse_metadata,
    require,
)
from funade.registry.signature import Signature, TensorSpec
from funade.registry.tensors import Tensors, normalize

FILE = "model.onnx"
ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
_ZIPMAP_FIX = (
    "Give every input and output a tensor type; for a classifier converted with skl2onnx, turn "
    "ZipMap off: to_onnx(model, X, options={id(model): {'zipmap': False}})."
)


class OnnxMetadata(BaseModel):
    """What ``OnnxFlavor.save`` records in ``funade.json``."""

    model_config = ConfigDict(extra="forbid")

    file: Literal["model.onnx"] = "model.onnx"


class OnnxModel:
    """An onnxruntime session answering tensors."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._outputs = [o.name for o in session.get_outputs()]

    @property
    def native(self) -> object:
        return self._session

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], outputs: Collection[str] | None = None
    ) -> Tensors:
        names = [n for n in self._outputs if outputs is None or n in outputs] or self._outputs
        results = self._session.run(names, dict(inputs))
        return {n: normalize(r, name=n) for n, r in zip(names, results, strict=True)}


class OnnxFlavor:
    """Saves ONNX models as one file and loads them into onnxruntime."""

    name: ClassVar[str] = "onnx"
    extra: ClassVar[str] = "onnx"

    def matches(self, model: object) -> bool:
        if isinstance(model, bytes | bytearray):
            return True
        if isinstance(model, str | os.PathLike):
            return Path(model).suffix == ".onnx"
        return "onnx" in sys.modules and isinstance(model, sys.modules["onnx"].ModelProto)

    def save(self, model: object, path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        check_options(options, {}, flavor=self.name)
        (path / FILE).write_bytes(_serialized(model))
        return {"file": FILE}

    def requirements(self, path: Path, metadata: Mapping[str, Any]) -> list[str]:
        return ["onnxruntime", "numpy"]

    def load(
        self, path: Path, metadata: Mapping[str, Any], signature: Signature | None
    ) -> OnnxModel:
        meta = parse_metadata(OnnxMetadata, metadata, flavor=self.name)
        return OnnxModel(_session(str(path / meta.file), meta.file))

    def declared_signature(self, model: LoadedModel) -> Signature:
        session: Any = model.native
        inputs = [_spec(arg, "input") for arg in session.get_inputs()]
        outputs = [_spec(arg, "output") for arg in session.get_outputs()]
        return Signature(
            inputs=inputs, outputs=outputs, input_format="tensor" if len(inputs) == 1 else "tensors"
        )

    def wrap(self, model: object, metadata: Mapping[str, Any], signature: Signature | None) -> None:
        return None  # the saved file is the model, byte for byte

    def runs_code(self, metadata: Mapping[str, Any]) -> bool:
        """An ONNX graph is data that onnxruntime interprets."""
        return False

    def check_files(self, files: Mapping[str, PackageFile], metadata: Mapping[str, Any]) -> None:
        meta = parse_metadata(OnnxMetadata, metadata, flavor=self.name, on_server=True)
        file = files.get(meta.file)
        if file is None:
            raise missing_file(meta.file, self.name)
        problem = None
        if not file.head.startswith(b"\x08"):  # field 1 of ModelProto, ir_version, comes first
            problem = "does not start like an ONNX model (ir_version)"
        elif file.complete and (onnx := _optional("onnx")) is not None:
            try:  # parsing protobuf runs no model code
                onnx.load_from_string(file.head)
            except Exception as exc:
                problem = f"is not a valid ONNX model ({type(exc).__name__}: {exc})"
        if problem:
            raise InvalidArtifactError(
                f"'{meta.file}' {problem}.",
                field="artifact",
                value=meta.file,
                fix="Export the model again, e.g. with onnx.save or skl2onnx.to_onnx.",
            )


def _serialized(model: object) -> bytes:
    if isinstance(model, bytes | bytearray):
        return bytes(model)
    if isinstance(model, str | os.PathLike):
        try:
            return Path(model).read_bytes()
        except OSError as exc:
            raise InvalidInputError(
                f"Cannot read the ONNX file '{model}': {exc.strerror}.",
                field="model",
                value=str(model),
                fix="Pass the path of an existing .onnx file.",
            ) from None
    data: bytes = model.SerializeToString()  # type: ignore[attr-defined]
    return data


def _session(source: str | bytes, file: str) -> Any:
    ort = require("onnxruntime", extra="onnx", needed_by="The onnx flavor")
    try:
        return ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise load_failure(
            "onnx", file, exc, "check the file is a complete ONNX model onnxruntime supports"
        ) from exc


def _spec(arg: Any, kind: str) -> TensorSpec:
    datatype = ORT_TYPES.get(arg.type)
    if datatype is None:
        raise InvalidInputError(
            f"The ONNX {kind} '{arg.name}' has type {arg.type}, which is not a tensor funade "
            "can serve.",
            field=f"{kind}s.{arg.name}",
            value=arg.type,
            fix=_ZIPMAP_FIX,
        )
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [None])]
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape)


def _optional(module: str) -> Any:
    """``module`` if installed (the control plane may lack the onnx extra), else None."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        return None
