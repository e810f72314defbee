"""How the sklearn flavor's files are written, read and checked.

skops files are made canonical (the same model gives the same bytes, so the same digest) and are
loaded trusting only the types recorded when the model was saved, and only if those belong to
scikit-learn, NumPy or SciPy. joblib files are pickles: written only when the user asks, loaded
only by the user's choice, and checked by the server from their opening bytes without unpickling.
"""

from __future__ import annotations

import io
import json
import pickletools
import zipfile
from pathlib import Path
from typing import Any

from funade.errors import InvalidArtifactError, InvalidInputError, ModelLoadError
from funade.registry.flavors.base import PackageFile, load_failure, require
from funade.registry.flavors.skops_trust import (
    defaults_were_deferred,
    exact_trust,
    skops_io,
    types_beyond_builtins,
)
from funade.registry.manifest import REBUILD

TRUSTED_MODULES = ("sklearn", "numpy", "scipy")
JOBLIB_FIX = (
    "Pass options={'serialization': 'joblib'} (loading a joblib file runs the code it names, so "
    "only load packages you trust)."
)

PICKLE_FIX = (
    "Install the library versions the model was saved with (see 'requirements' in funade.json) "
    "and make sure any functions or classes it refers to are importable."
)
# How a pickle (protocol 4/5, or 0-3) names a function or class of the __main__ module.
_MAIN_REFERENCES = (b"\x8c\x08__main__", b"c__main__\n")


def trustworthy(type_name: str) -> bool:
    """True if ``type_name`` (``module.Class``) belongs to scikit-learn, NumPy or SciPy."""
    return type_name.split(".", 1)[0] in TRUSTED_MODULES


def save_skops(model: object, file: Path) -> list[str]:
    """Write ``model`` with skops; return every type it holds beyond skops's builtins (all must be
    in TRUSTED_MODULES): loading trusts exactly these."""
    sio = skops_io()
    try:
        file.write_bytes(canonical_skops(sio.dumps(model)))
    except Exception as exc:
        raise InvalidInputError(
            f"skops cannot save this {type(model).__name__}: {type(exc).__name__}: {exc}",
            field="options.serialization",
            value="skops",
            fix=JOBLIB_FIX,
        ) from exc
    untrusted = types_beyond_builtins(sio, file=file)
    refused = [t for t in untrusted if not trustworthy(t)]
    if refused:
        file.unlink()
        raise InvalidInputError(
            f"skops cannot save this {type(model).__name__} safely: it contains types from outside "
            f"scikit-learn, NumPy and SciPy ({', '.join(refused)}), which a server would have to "
            "trust blindly.",
            field="options.serialization",
            value="skops",
            fix=JOBLIB_FIX,
        )
    return untrusted


def save_joblib(model: object, file: Path) -> list[str]:
    """Pickle ``model`` with joblib, refusing references to ``__main__`` no server can import."""
    joblib = require("joblib", extra="sklearn", needed_by="The sklearn flavor")
    joblib.dump(model, file)
    if _mentions_main(file):
        file.unlink()
        raise InvalidInputError(
            f"The {type(model).__name__} refers to functions or classes defined in __main__ (your "
            "script or notebook), which a model server cannot import.",
            field="model",
            value=type(model).__name__,
            fix="Move them into a module that is installed where the model is served.",
        )
    return []


def _mentions_main(file: Path) -> bool:
    tail = b""
    with file.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            window = tail + chunk
            if any(ref in window for ref in _MAIN_REFERENCES):
                return True
            tail = window[-16:]
    return False


def load_skops(file: Path, trusted: list[str]) -> Any:
    """Load ``file`` trusting ``trusted`` only, and only if those are sklearn/NumPy/SciPy types."""
    untrustworthy = [t for t in trusted if not trustworthy(t)]
    if untrustworthy:
        raise ModelLoadError(
            f"funade.json asks to trust types outside scikit-learn, NumPy and SciPy when loading "
            f"'{file.name}': {', '.join(untrustworthy)}. funade refuses to.",
            field="flavor_metadata.trusted_types",
            value=untrustworthy,
            fix="Save such models with joblib: " + JOBLIB_FIX,
        )
    sio = skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        try:
            with exact_trust():
                return sio.load(file, trusted=trusted)
        except UntrustedTypesFoundException:
            if not defaults_were_deferred():
                raise
            # a package saved when only what skops did not trust by default was recorded
            return sio.load(file, trusted=trusted)
    except UntrustedTypesFoundException as exc:
        found = sorted(set(sio.get_untrusted_types(file=file)) - set(trusted))
        raise ModelLoadError(
            f"'{file.name}' contains types that were not recorded as trusted when it was saved: "
            f"{', '.join(found) or exc}. funade refuses to load it.",
            field="flavor_metadata.trusted_types",
            value=found,
            fix="Rebuild the package from the estimator. If you trust its source: " + JOBLIB_FIX,
        ) from exc
    except Exception as exc:
        raise load_failure("sklearn", file.name, exc, PICKLE_FIX) from exc


def _bad_file(name: str, why: str) -> InvalidArtifactError:
    return InvalidArtifactError(f"'{name}' {why}.", field="artifact", value=name, fix=REBUILD)


def check_skops(name: str, file: PackageFile, trusted: list[str]) -> None:
    """Refuse a manifest trusting foreign types, a file that is no zip, and (when the file is
    whole) a schema naming types not recorded as trusted. Nothing is loaded."""
    untrustworthy = [t for t in trusted if not trustworthy(t)]
    if untrustworthy:
        why = f"is trusted with types outside {', '.join(TRUSTED_MODULES)}: {untrustworthy}"
        raise _bad_file(name, why)
    if not file.head.startswith(b"PK\x03\x04"):
        raise _bad_file(name, "is not a skops file (a zip archive)")
    if not file.complete:
        return  # the schema is at the end; load() checks it against the trusted types
    try:
        with zipfile.ZipFile(io.BytesIO(file.head)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        raise _bad_file(name, f"is not a valid zip archive ({exc})") from None
    if "schema.json" not in names:
        raise _bad_file(name, "has no schema.json, so it is not a skops file")
    try:
        sio = skops_io()
    except ModelLoadError:  # the control plane may not have the sklearn extra
        return
    try:
        extra = sorted(set(types_beyond_builtins(sio, data=file.head)) - set(trusted))
        if extra:  # a package saved when only what skops did not trust by default was recorded
            extra = sorted(set(sio.get_untrusted_types(data=file.head)) - set(trusted))
    except Exception as exc:
        raise _bad_file(name, f"has an unreadable skops schema ({exc})") from None
    if extra:
        raise _bad_file(name, f"contains types not recorded as trusted: {', '.join(extra)}")


def check_pickle(name: str, file: PackageFile) -> None:
    """A joblib file we write is a pickle (protocol 2-5); its array data follow in raw chunks,
    so only the opening opcodes can be parsed. Nothing is unpickled."""
    head = file.head
    if len(head) < 2 or head[0] != 0x80 or head[1] not in (2, 3, 4, 5):
        raise _bad_file(name, "is not a pickle (it does not start with a pickle protocol header)")
    parsed = 0
    try:
        for _ in pickletools.genops(head):
            parsed += 1
            if parsed >= 3:
                return
    except ValueError as exc:
        raise _bad_file(name, f"is not a valid pickle ({exc})") from None


def load_joblib(file: Path) -> Any:
    """Unpickle ``file`` (the user chose joblib, so trusts its own package)."""
    joblib = require("joblib", extra="sklearn", needed_by="The sklearn flavor")
    try:
        return joblib.load(file)
    except Exception as exc:
        raise load_failure("sklearn", file.name, exc, PICKLE_FIX) from exc


def canonical_skops(data: bytes) -> bytes:
    """A skops archive with object ids and file names numbered in schema order and fixed zip
    timestamps: skops names them after ``id()`` and the clock, so the same model would
    otherwise give different bytes each time it is saved."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = json.loads(source.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}
        members = set(source.namelist())

        def renumber(node: Any) -> None:
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in list(items):
                if key == "__id__" and isinstance(value, int):
                    node[key] = ids.setdefault(value, len(ids))
                elif key == "file" and isinstance(value, str) and value in members:
                    node[key] = files.setdefault(value, f"{len(files)}{Path(value).suffix}")
                elif isinstance(value, dict | list):
                    renumber(value)

        renumber(schema)
        contents = [(new, source.read(old)) for old, new in files.items()]
        unnamed = sorted(members - set(files) - {"schema.json"})  # none today; kept if any
        contents += [(old, source.read(old)) for old in unnamed]
    contents.append(("schema.json", json.dumps(schema, indent=2).encode()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for name, content in contents:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            target.writestr(info, content)
    return out.getvalue()
