"""The torch flavor: PyTorch modules, run on the CPU under ``torch.inference_mode()``.

Two serializations:

- ``torchscript``, for a ``torch.jit.ScriptModule`` (scripted or traced): ``torch.jit.save`` to
  ``model.pt``, ``torch.jit.load`` onto the CPU. The file carries the module's code, so loading
  needs no Python class.
- ``state_dict``, for any other ``torch.nn.Module``: its ``state_dict()`` saved with
  ``torch.save`` to ``state_dict.pt``, and the source of the module defining its class captured
  as the python_class flavor does. Loading runs that source, builds the class with the
  ``init_kwargs`` option, and reads the tensors with ``torch.load(weights_only=True)``, which
  rebuilds only tensors and plain containers.

One input is passed to ``forward`` positionally; several (a dict, or a DataFrame's columns) by
name. Float dtypes are kept (bfloat16, which NumPy lacks, comes out as float32). A tensor output
is named ``output``; a tuple or list gives ``output_0``, ``output_1``…; a dict keeps its keys.
The module runs in eval mode; one in training mode is switched back after each call.
The server checks the files as zip archives and reads a state dict's pickle opcodes without
unpickling it.
"""

from __future__ import annotations

import io
import json
import pickletools
import re
import struct
import sys
import zipfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, model_validator

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
from funade.registry.flavors.pyclass import (
    ClassSource,
    check_class_source,
    load_class,
    source_requirements,
    write_class_source,
)
from funade.registry.manifest import REBUILD
from funade.registry.signature import Signature
from funade.registry.tensors import Tensors, normalize

FILES = {"torchscript": "model.pt", "state_dict": "state_dict.pt"}
OPTIONS = {
    "serialization": "'torchscript' (default for a ScriptModule) or 'state_dict' (default for "
    "any other nn.Module: its tensors plus the source of its class)",
    "init_kwargs": "JSON-able keyword arguments that build the module's class before its "
    "state_dict is loaded (default: none)",
}
LOAD_FIX = "Install the torch version in the manifest's 'requirements', then retry."
# What torch.save writes for a state dict: an OrderedDict of tensors over typed storages.
_STATE_DICT_GLOBALS = re.compile(
    r"collections OrderedDict|torch\._utils _rebuild_tensor_v2|torch [A-Za-z0-9]+Storage"
)
_ZIP_LOCAL_HEADER = struct.Struct("<4s5H3I2H")
_ZIP_MAGIC = b"PK\x03\x04"


class TorchMetadata(BaseModel):
    """What ``TorchFlavor.save`` records in ``funade.json``."""

    model_config = ConfigDict(extra="forbid")

    serialization: Literal["torchscript", "state_dict"]
    file: Literal["model.pt", "state_dict.pt"]
    module_class: ClassSource | None = None
    init_kwargs: dict[str, Any] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.file != FILES[self.serialization]:
            raise ValueError(f"a {self.serialization} package holds {FILES[self.serialization]}")
        if (self.module_class is None) != (self.serialization == "torchscript"):
            raise ValueError("module_class is needed by, and only by, a state_dict package")
        return self


class TorchModel:
    """A module answering tensors."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._torch = require("torch", extra="torch", needed_by="The torch flavor")

    @property
    def native(self) -> object:
        return self._module

    def predict(
        self, inputs: Mapping[str, npt.NDArray[Any]], outputs: Collection[str] | None = None
    ) -> Tensors:
        torch = self._torch
        tensors = {name: _to_torch(torch, name, array) for name, array in inputs.items()}
        with torch.inference_mode(), _evaluating(self._module):
            if len(tensors) == 1:
                out = self._module(next(iter(tensors.values())))
            else:
                out = self._module(**tensors)
        return _from_torch(torch, out)


class TorchFlavor:
    """Saves PyTorch modules as TorchScript or as a state dict with their class's source."""

    name: ClassVar[str] = "torch"
    extra: ClassVar[str] = "torch"

    def matches(self, model: object) -> bool:
        torch = sys.modules.get("torch")  # a module cannot exist without torch imported
        return torch is not None and isinstance(model, torch.nn.Module)

    def save(self, model: object, path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        check_options(options, OPTIONS, flavor=self.name)
        torch = require("torch", extra="torch", needed_by="The torch flavor")
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(
                f"A {type(model).__name__} is not a torch.nn.Module.",
                field="model",
                value=type(model).__name__,
                fix="Pass an nn.Module, or a ScriptModule (torch.jit.script or torch.jit.trace).",
            )
        scripted = isinstance(model, torch.jit.ScriptModule)
        serialization = options.get("serialization", "torchscript" if scripted else "state_dict")
        init_kwargs = options.get("init_kwargs") or {}
        _check_serialization(serialization, scripted, init_kwargs)
        file = FILES[serialization]
        if serialization == "torchscript":
            torch.jit.save(model, str(path / file))
            return {"serialization": serialization, "file": file}
        cls = type(model)
        if cls.__module__.split(".")[0] == "torch":
            raise InvalidInputError(
                f"A bare {cls.__module__}.{cls.__qualname__} cannot be rebuilt from a state dict "
                "(its layers are arguments, not code).",
                field="model",
                value=cls.__qualname__,
                fix="Script or trace it (torch.jit.script(model) or torch.jit.trace(model, x)) "
                "and log the ScriptModule, or wrap it in an nn.Module class of your own.",
            )
        if "." in cls.__qualname__:
            raise InvalidInputError(
                f"{cls.__qualname__} is defined inside a function, so its source cannot be "
                "captured.",
                field="model",
                value=cls.__qualname__,
                fix="Define the module's class at the top level of a module.",
            )
        source = write_class_source(cls, path)
        torch.save(model.state_dict(), path / file)
        return {
            "serialization": serialization,
            "file": file,
            "module_class": source.model_dump(),
            "init_kwargs": init_kwargs,
        }

    def requirements(self, path: Path, metadata: Mapping[str, Any]) -> list[str]:
        meta = parse_metadata(TorchMetadata, metadata, flavor=self.name)
        imported = source_requirements(path, meta.module_class) if meta.module_class else []
        return sorted({"torch", "numpy", *imported})

    def load(
        self, path: Path, metadata: Mapping[str, Any], signature: Signature | None
    ) -> TorchModel:
        meta = parse_metadata(TorchMetadata, metadata, flavor=self.name)
        torch = require("torch", extra="torch", needed_by="The torch flavor")
        file = path / meta.file
        if meta.module_class is None:
            try:
                module = torch.jit.load(str(file), map_location="cpu")
            except Exception as exc:
                raise load_failure(self.name, meta.file, exc, LOAD_FIX) from exc
        else:
            module = _build(path, meta.module_class, meta.init_kwargs)
            try:
                state = torch.load(file, map_location="cpu", weights_only=True)
                module.load_state_dict(state, assign=True)  # keeps the saved dtypes
            except Exception as exc:
                fix = (
                    "Rebuild the package from the trained module; its class must build the same "
                    f"layers from init_kwargs {meta.init_kwargs}."
                )
                raise load_failure(self.name, meta.file, exc, fix) from exc
        module.eval()
        return TorchModel(module)

    def declared_signature(self, model: LoadedModel) -> Signature | None:
        return None

    def wrap(
        self, model: object, metadata: Mapping[str, Any], signature: Signature | None
    ) -> TorchModel:
        return TorchModel(model)

    def runs_code(self, metadata: Mapping[str, Any]) -> bool:
        """A state dict is rebuilt by running its class's captured source; a TorchScript file
        carries TorchScript, which torch.jit interprets without Python."""
        return metadata.get("serialization") != "torchscript"

    def check_files(self, files: Mapping[str, PackageFile], metadata: Mapping[str, Any]) -> None:
        meta = parse_metadata(TorchMetadata, metadata, flavor=self.name, on_server=True)
        file = files.get(meta.file)
        if file is None:
            raise missing_file(meta.file, self.name)
        if meta.module_class is None:
            _check_archive(meta.file, file, ("data.pkl", "constants.pkl", "version", "code/"))
        else:
            _check_archive(meta.file, file, ("data.pkl", "version"))
            _check_state_dict_pickle(meta.file, file)
            check_class_source(files, meta.module_class, flavor=self.name)


def _check_serialization(serialization: Any, scripted: bool, init_kwargs: Any) -> None:
    if serialization not in FILES:
        raise InvalidInputError(
            f"'{serialization}' is not a serialization the torch flavor knows.",
            field="options.serialization",
            value=serialization,
            fix="Use 'torchscript' (for a ScriptModule) or 'state_dict' (for an nn.Module).",
        )
    if serialization == "torchscript" and not scripted:
        raise InvalidInputError(
            "Only a ScriptModule can be saved as TorchScript.",
            field="options.serialization",
            value=serialization,
            fix="Script or trace the module first (torch.jit.script(model)), or save its "
            "state_dict (the default for an nn.Module).",
        )
    if serialization == "state_dict" and scripted:
        raise InvalidInputError(
            "A ScriptModule has no Python class to rebuild it from, so it cannot be saved as a "
            "state_dict.",
            field="options.serialization",
            value=serialization,
            fix="Save it as TorchScript (the default for a ScriptModule).",
        )
    if init_kwargs and serialization != "state_dict":
        raise InvalidInputError(
            "init_kwargs only apply to a module saved as a state_dict.",
            field="options.init_kwargs",
            value=init_kwargs,
            fix="Drop init_kwargs: TorchScript needs no class to load.",
        )
    try:
        json.dumps(init_kwargs, allow_nan=False)
        if not isinstance(init_kwargs, dict):
            raise TypeError("not a dict")
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"init_kwargs must be a dict of JSON values ({exc}).",
            field="options.init_kwargs",
            value=repr(init_kwargs),
            fix="Pass numbers, strings, booleans, lists and dicts, e.g. {'hidden': 32}.",
        ) from None


def _build(path: Path, source: ClassSource, init_kwargs: Mapping[str, Any]) -> Any:
    cls = load_class(path, source, flavor="torch")
    try:
        return cls(**init_kwargs)
    except Exception as exc:
        fix = (
            f"Make {source.class_name}(**init_kwargs) build the module: pass "
            "options={'init_kwargs': {...}} to log_model with the arguments it needs."
        )
        raise load_failure("torch", source.source, exc, fix) from exc


@contextmanager
def _evaluating(module: Any) -> Iterator[None]:
    """``module`` in eval mode for the block; one in training mode is put back afterwards."""
    training = bool(module.training)
    if training:
        module.train(False)
    try:
        yield
    finally:
        if training:
            module.train(True)


def _to_torch(torch: Any, name: str, array: npt.NDArray[Any]) -> Any:
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"Input '{name}' holds {array.dtype} values; a torch model takes numbers or booleans.",
            field=name,
            value=str(array.dtype),
            fix="Encode strings as numbers before passing them to a torch model.",
        )
    if not array.flags.writeable:  # torch.from_numpy warns on read-only memory
        array = np.array(array)
    return torch.from_numpy(np.ascontiguousarray(array))


def _from_torch(torch: Any, out: Any) -> Tensors:
    if isinstance(out, Mapping):
        if not all(isinstance(k, str) and k for k in out):
            raise _bad_output(f"a dict with keys {list(out)[:5]}")
        return {k: _to_numpy(torch, k, v) for k, v in out.items()}
    if isinstance(out, tuple | list):
        return {f"output_{i}": _to_numpy(torch, f"output_{i}", v) for i, v in enumerate(out)}
    return {"output": _to_numpy(torch, "output", out)}


def _to_numpy(torch: Any, name: str, value: Any) -> npt.NDArray[Any]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return normalize(value.numpy(), name=name)
    if isinstance(value, tuple | list | Mapping) or not isinstance(
        value, int | float | bool | np.ndarray | np.generic
    ):
        raise _bad_output(f"{type(value).__name__} '{name}'")
    return normalize(value, name=name)


def _bad_output(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"The torch module returned {what}, which is not a tensor funade can serve.",
        field="output",
        value=what,
        fix="Return a tensor, a tuple of tensors, or a dict of tensors with string keys from "
        "forward.",
    )


def _bad_file(name: str, why: str) -> InvalidArtifactError:
    return InvalidArtifactError(f"'{name}' {why}.", field="artifact", value=name, fix=REBUILD)


def _first_entry(name: str, head: bytes) -> tuple[str, int, bytes]:
    """The name, compression method and available data of a zip's first member."""
    if len(head) < _ZIP_LOCAL_HEADER.size or not head.startswith(_ZIP_MAGIC):
        raise _bad_file(name, "is not a PyTorch file (a zip archive)")
    fields = _ZIP_LOCAL_HEADER.unpack_from(head)
    method, name_len, extra_len = fields[3], fields[9], fields[10]
    start = _ZIP_LOCAL_HEADER.size
    try:
        member = head[start : start + name_len].decode("utf-8")
    except UnicodeDecodeError:
        member = ""
    if "/" not in member.strip("/"):
        raise _bad_file(
            name, "is not a PyTorch file (its first member is not in an archive folder)"
        )
    return member, method, head[start + name_len + extra_len :]


def _check_archive(name: str, file: PackageFile, needed: tuple[str, ...]) -> None:
    """A zip as torch writes it: every member in one folder; when the file is whole, the
    members ``needed`` are there and every CRC matches."""
    first, _, _ = _first_entry(name, file.head)
    if not file.complete:
        return  # the zip's directory is at its end
    prefix = first.split("/", 1)[0] + "/"
    try:
        with zipfile.ZipFile(io.BytesIO(file.head)) as archive:
            members = archive.namelist()
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _bad_file(name, f"is not a valid zip archive ({exc})") from None
    if broken is not None:
        raise _bad_file(name, f"has a damaged member '{broken}'")
    if any(not m.startswith(prefix) for m in members):
        raise _bad_file(name, "is not a PyTorch file (its members are not in one archive folder)")
    inner = [m[len(prefix) :] for m in members]
    lacking = [
        n for n in needed if not any(i == n or (n[-1] == "/" and i.startswith(n)) for i in inner)
    ]
    if lacking:
        raise _bad_file(name, f"is not a PyTorch file of this kind (it lacks {', '.join(lacking)})")


def _check_state_dict_pickle(name: str, file: PackageFile) -> None:
    """The state dict's ``data.pkl`` comes first; read its opcodes, never unpickle it, and
    refuse references to anything but tensors, storages and OrderedDict."""
    member, method, data = _first_entry(name, file.head)
    if not member.endswith("/data.pkl") or method != zipfile.ZIP_STORED:
        raise _bad_file(name, "is not a state dict saved by torch.save (no data.pkl first)")
    stream = io.BytesIO(data)
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            if opcode.name in ("STACK_GLOBAL", "INST", "OBJ"):
                raise _bad_file(name, f"has a pickle opcode {opcode.name} a state dict never uses")
            if opcode.name == "GLOBAL" and not _STATE_DICT_GLOBALS.fullmatch(str(arg)):
                raise _bad_file(
                    name, f"refers to {str(arg).replace(' ', '.')}, which a state dict never does"
                )
    except ValueError as exc:
        if file.complete or stream.tell() < len(data):
            raise _bad_file(name, f"has a damaged data.pkl ({exc})") from None
        # data.pkl runs past the first 64 KiB; torch.load(weights_only=True) guards the rest
