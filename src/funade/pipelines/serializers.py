"""Values passed between pipeline steps, stored as files by type and named by their digest.

:func:`encode` writes a step's output into a directory and returns an :class:`Encoded`: the
kind, the file, its ``sha256:`` digest and size. :func:`decode` reads it back in the next step.
The kinds, in the order :func:`encode` tries them:

``json``
    ``None``, ``bool``, ``int``, finite ``float``, ``str``, and lists, tuples and ``str``-keyed
    dicts of those, in canonical JSON (sorted keys, no spaces), so the same value always has the
    same digest. Tuples come back as lists. Up to :data:`INLINE_LIMIT` bytes the value is also
    kept in ``Encoded.value``, for conditions and the UI.
``numpy``
    A ``numpy.ndarray`` in ``.npy`` format, without pickle. Object arrays are stored as ``pickle``.
``parquet`` / ``arrow``
    A pandas ``DataFrame`` (``parquet``) or a pyarrow ``Table`` (``arrow``), both as Parquet
    files written by pyarrow; the kind says which type :func:`decode` gives back. pandas and
    pyarrow are imported only when such a value is met. A DataFrame pyarrow cannot convert
    (e.g. a column of mixed types) is stored as ``pickle``.
``file``
    A ``pathlib.Path`` to a file: the file is copied (its suffix is kept); decoded as a Path to
    a fresh copy in the work directory.
``directory``
    A ``pathlib.Path`` to a directory, as a deterministic tar
    (:func:`funade.artifacts.tarball.pack_directory`); decoded as a freshly unpacked directory.
``pickle``
    Anything else, pickled with protocol 5 (digests are deterministic only as far as pickle is).

Files are written under a temporary name and renamed to ``<hex digest><ext>`` once complete, so
a crash never leaves a partial file under a final name.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import pickle
import re
import shutil
import tempfile
import types
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import numpy as np

from funade.artifacts.digest import digest_hex, sha256_file
from funade.artifacts.tarball import pack_directory, unpack
from funade.errors import InvalidInputError

__all__ = ["INLINE_LIMIT", "KINDS", "Encoded", "check_type", "decode", "encode", "item_of"]

INLINE_LIMIT = 4096
KINDS = ("json", "numpy", "parquet", "arrow", "file", "directory", "pickle")
_CHECKED_ELEMENTS = 1000
_SUFFIX = re.compile(r"\.[A-Za-z0-9_-]{1,16}")
_STORE_FIX = (
    "Return JSON-able values, numpy arrays, pandas/pyarrow tables, a pathlib.Path to a file or "
    "directory, or a picklable object."
)


@dataclass(frozen=True)
class Encoded:
    """One stored value: its kind, the file at ``path`` and that file's digest and size."""

    kind: str
    path: Path
    digest: str
    size: int
    type_name: str
    value: Any = None
    length: int | None = None


def encode(value: Any, dest_dir: Path, *, where: str) -> Encoded:
    """Store ``value`` in ``dest_dir``; ``where`` names the output in error messages."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    kind = type(value)
    type_name = f"{kind.__module__}.{kind.__qualname__}"
    length = len(value) if isinstance(value, list | tuple) else None
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        length = int(value.shape[0])

    data = _canonical_json(value)
    if data is not None:
        encoded = _store(
            dest_dir, "json", ".json", type_name, length, lambda p: p.write_bytes(data)
        )
        if len(data) > INLINE_LIMIT:
            return encoded
        return dataclasses.replace(encoded, value=json.loads(data))  # what decode() gives
    if isinstance(value, np.ndarray) and value.dtype != np.dtype(object):
        return _store(dest_dir, "numpy", ".npy", type_name, length, partial(_save_npy, value))
    package = kind.__module__.partition(".")[0]
    table = _as_arrow_table(value) if package in ("pandas", "pyarrow") else None
    if table is not None:
        import pyarrow.parquet as pq

        # Explicit settings (pyarrow's defaults): the same table gives the same bytes. The file
        # records the pyarrow (and pandas) version, so the digest changes when they do.
        def write(temp: Path) -> None:
            pq.write_table(table, str(temp), compression="snappy", use_dictionary=True)

        kind_name = "parquet" if package == "pandas" else "arrow"
        return _store(dest_dir, kind_name, ".parquet", type_name, int(table.num_rows), write)
    if isinstance(value, Path) and value.is_file():
        suffix = value.suffix if _SUFFIX.fullmatch(value.suffix) else ""
        return _store(dest_dir, "file", suffix, type_name, None, partial(shutil.copyfile, value))
    if isinstance(value, Path) and value.is_dir():
        return _store(
            dest_dir, "directory", ".tar", type_name, None, partial(pack_directory, value)
        )
    if isinstance(value, Path):
        raise InvalidInputError(
            f"{where} is the path {str(value)!r}, which is not an existing file or directory.",
            field=where,
            value=str(value),
            fix="Return the path of a file or directory that the step has written.",
        )

    def dump(temp: Path) -> None:
        try:
            with temp.open("wb") as file:
                pickle.dump(value, file, protocol=5)
        except Exception as exc:
            raise InvalidInputError(
                f"{where} is a {type_name}, which cannot be stored between steps ({exc}).",
                field=where,
                value=type_name,
                fix=_STORE_FIX,
            ) from exc

    return _store(dest_dir, "pickle", ".pkl", type_name, length, dump)


def decode(kind: str, path: Path, *, work_dir: Path) -> Any:
    """The value :func:`encode` stored at ``path`` as ``kind``; files go into ``work_dir``."""
    if kind == "json":
        return json.loads(path.read_text(encoding="utf-8"))
    if kind == "numpy":
        return np.load(path, allow_pickle=False)
    if kind in ("parquet", "arrow"):
        import pyarrow.parquet as pq

        # A path, not a Python file object: pyarrow 26 reading through a Python file object can
        # abort the interpreter at exit ("terminate called without an active exception").
        table = pq.read_table(str(path))
        return table.to_pandas() if kind == "parquet" else table
    if kind in ("file", "directory"):
        work_dir.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work_dir))
        if kind == "directory":
            unpack(path, fresh)
            return fresh
        return Path(shutil.copyfile(path, fresh / path.name))
    if kind == "pickle":
        with path.open("rb") as file:
            return pickle.load(file)  # noqa: S301 -- written by this pipeline's own steps
    raise InvalidInputError(
        f"{kind!r} is not a kind of stored value; expected one of {', '.join(KINDS)}.",
        field="kind",
        value=kind,
        fix="Pass the kind that encode() reported for the value.",
    )


def item_of(kind: str, path: Path, index: int, *, work_dir: Path) -> Any:
    """Element ``index`` of a stored list, tuple or array (for fan-out over a list output)."""
    if kind in ("parquet", "arrow"):
        raise InvalidInputError(
            "Fan-out over a table is not supported.",
            field="kind",
            value=kind,
            fix="Return a list (e.g. of row chunks or file paths) to fan out over.",
        )
    if kind == "numpy":
        sequence: Any = np.load(path, mmap_mode="r", allow_pickle=False)
    elif kind in ("json", "pickle"):
        sequence = decode(kind, path, work_dir=work_dir)
    else:
        sequence = None
    if not isinstance(sequence, list | tuple | np.ndarray) or np.ndim(sequence) == 0:
        raise InvalidInputError(
            f"Cannot take element {index} of a stored {kind!r} value: it is not a list, tuple "
            "or array.",
            field="index",
            value=index,
            fix="Fan out only over outputs that are lists, tuples or arrays.",
        )
    if not 0 <= index < len(sequence):
        raise InvalidInputError(
            f"Element {index} is out of range for a stored value of length {len(sequence)}.",
            field="index",
            value=index,
            fix=f"Pass an index from 0 to {len(sequence) - 1}.",
        )
    item = sequence[index]
    return np.array(item) if isinstance(item, np.ndarray) else item  # detach from the mmap


def check_type(value: Any, annotation: Any, *, where: str) -> None:
    """Raise ``InvalidInputError`` unless ``value`` matches ``annotation`` (checked shallowly
    for unknown typing constructs, and on the first 1000 elements of containers)."""
    problem = _mismatch(value, annotation, "")
    if problem is None:
        return
    at, inner, expected = problem
    declared, got = _describe(annotation), _type_of(value)
    output = re.fullmatch(r"(.*), (output .*)", where)
    if output:
        subject = f"{output[1]} returned {got} for {output[2]}"
        fix = f"Return a value of type {declared}, or change the step's return annotation."
    else:
        subject = f"{where} is {got}"
        fix = f"Pass a value of type {declared}, or change the annotation."
    detail = f": element {at} is {_type_of(inner)}, not {_describe(expected)}" if at else ""
    raise InvalidInputError(
        f"{subject}, which is declared {declared}{detail}.", field=where, value=got, fix=fix
    )


def _canonical_json(value: Any) -> bytes | None:
    """The canonical JSON of ``value`` if it round-trips through JSON exactly, else None."""
    try:
        if not _is_json(value):
            return None
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (RecursionError, ValueError):  # a cycle, deep nesting, a huge int, a lone surrogate
        return None


def _is_json(value: Any) -> bool:
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return True
    if kind is float:
        return math.isfinite(value)
    if kind in (list, tuple):
        return all(_is_json(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _is_json(item) for key, item in value.items())
    return False


def _save_npy(array: np.ndarray[Any, Any], temp: Path) -> None:
    np.save(temp, array, allow_pickle=False)  # temp ends in .npy, so np.save adds no suffix


def _as_arrow_table(value: Any) -> Any:
    """``value`` as a pyarrow Table if it is a DataFrame pyarrow can convert, or a Table."""
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return value
    import pandas as pd

    if not isinstance(value, pd.DataFrame):
        return None
    try:
        return pa.Table.from_pandas(value)
    except (pa.ArrowException, TypeError, ValueError):
        return None


def _store(
    dest_dir: Path,
    kind: str,
    ext: str,
    type_name: str,
    length: int | None,
    write: Callable[[Path], object],
) -> Encoded:
    """Have ``write`` fill a temporary file, then rename it to ``<hex digest><ext>``."""
    fd, name = tempfile.mkstemp(prefix=".partial-", suffix=ext, dir=dest_dir)
    os.close(fd)
    temp = Path(name)
    try:
        # No fsync: this is a working file the runner hands to the artifact store, which makes
        # it durable; after a crash the step runs again.
        write(temp)
        digest = sha256_file(temp)
        final = dest_dir / f"{digest_hex(digest)}{ext}"
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Encoded(kind, final, digest, final.stat().st_size, type_name, None, length)


_Problem = tuple[str, Any, Any]  # (where inside the value, the part that is wrong, its type)
_ANYTHING = (inspect.Parameter.empty, Any, object)


def _mismatch(value: Any, annotation: Any, at: str) -> _Problem | None:
    if any(annotation is anything for anything in _ANYTHING):
        return None
    if annotation is None or annotation is type(None):
        return None if value is None else (at, value, annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _mismatch(value, args[0], at)
    if origin is Union or origin is types.UnionType:
        inner = None  # an arm whose container type matched but whose elements did not
        for arm in args:
            problem = _mismatch(value, arm, at)
            if problem is None:
                return None
            if problem[0] != at and inner is None:
                inner = problem
        return inner or (at, value, annotation)
    if origin is Literal:
        matches = any(type(value) is type(option) and value == option for option in args)
        return None if matches else (at, value, annotation)
    if isinstance(origin, type):
        if not _is_instance(value, origin):
            return (at, value, annotation)
        return _elements(value, origin, args, annotation, at)
    if isinstance(annotation, type):
        return None if _is_instance(value, annotation) else (at, value, annotation)
    supertype = getattr(annotation, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _mismatch(value, supertype, at)
    return None  # a TypeVar, a string, a construct this check does not know: accept


def _elements(
    value: Any, origin: type, args: tuple[Any, ...], annotation: Any, at: str
) -> _Problem | None:
    if not args:
        return None
    pairs: Iterable[tuple[Any, Any, str]]  # (element, its annotation, where it is)
    if issubclass(origin, tuple) and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            return (at, value, annotation)
        pairs = ((value[i], arg, f"{at}[{i}]") for i, arg in enumerate(args))
    elif issubclass(origin, Sequence | Set) and not isinstance(value, str):
        pairs = ((item, args[0], f"{at}[{i}]") for i, item in enumerate(value))
    elif issubclass(origin, Mapping) and len(args) == 2:
        pairs = (
            pair
            for key, item in value.items()
            for pair in (
                (key, args[0], f"{at}[{key!r}] (its key)"),
                (item, args[1], f"{at}[{key!r}]"),
            )
        )
    else:
        return None
    for item, arg, place in islice(pairs, _CHECKED_ELEMENTS):
        problem = _mismatch(item, arg, place)
        if problem is not None:
            return problem
    return None


def _is_instance(value: Any, cls: type) -> bool:
    if isinstance(value, bool) and cls in (int, float, complex):
        return False
    if cls is float:
        return isinstance(value, int | float)
    if cls is complex:
        return isinstance(value, int | float | complex)
    try:
        return isinstance(value, cls)
    except TypeError:  # e.g. a Protocol that is not runtime-checkable
        return True


def _describe(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, type) and get_origin(annotation) is None:
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def _type_of(value: Any) -> str:
    return "None" if value is None else type(value).__qualname__
