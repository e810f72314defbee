"""What runs inside a step's own process: load the inputs, call the function, store the outputs.

The runner describes the work as a JSON task; :func:`run_task` writes ``result.json`` into the
task's output directory, last, so a process that dies (a crash, ``os._exit``, the OOM killer)
leaves no result and the runner reports how it ended instead.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from funade.errors import FunadeError, InvalidInputError
from funade.pipelines import serializers
from funade.pipelines.steps import SINGLE, Step

__all__ = ["RESULT", "resolve_step", "run_task"]

RESULT = "result.json"


def resolve_step(function: str) -> Step[..., Any]:
    """The step named ``module:qualname`` (its module is imported if it is not yet)."""
    module_name, _, qualname = function.partition(":")
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, Step):
        return obj
    raise InvalidInputError(
        f"{function} is not a step defined at the top level of its module.",
        field="function",
        value=function,
        fix="Define steps with @funade.step at module level, not inside other functions.",
    )


def _input(spec: dict[str, Any], work_dir: Path) -> Any:
    kind = spec["kind"]
    if kind == "value":
        return spec["value"]
    if kind == "stored":
        return _load(spec["stored"], work_dir)
    if kind == "item":
        stored = spec["stored"]
        if stored.get("inline"):
            return stored["value"][spec["index"]]
        return serializers.item_of(
            stored["kind"], Path(stored["path"]), spec["index"], work_dir=work_dir
        )
    return [_load(s, work_dir) for s in spec["items"]]


def _load(stored: dict[str, Any], work_dir: Path) -> Any:
    if stored.get("inline"):
        return stored["value"]
    return serializers.decode(stored["kind"], Path(stored["path"]), work_dir=work_dir)


def run_task(task: dict[str, Any]) -> int:
    """Run one step attempt; returns the process's exit code (0 on success)."""
    out_dir = Path(task["out_dir"])
    where = task["where"]
    started = time.monotonic()
    try:
        step = resolve_step(task["function"])
        work_dir = out_dir / "work"  # (made by the inputs that unpack files into it)
        inputs = {name: _input(spec, work_dir) for name, spec in task["inputs"].items()}
        returned = step.fn(**inputs)
        outputs = _split(step, returned, where)
        encoded = {}
        for name, value in outputs.items():
            value = _plain(value)
            out_where = f"{where}, output {name!r}"
            serializers.check_type(value, step.outputs[name], where=out_where)
            encoded[name] = _describe(serializers.encode(value, out_dir, where=out_where))
        result: dict[str, Any] = {"ok": True, "outputs": encoded}
    except Exception as exc:
        traceback.print_exc()
        result = {
            "ok": False,
            "error": str(exc) if isinstance(exc, FunadeError) else f"{type(exc).__name__}: {exc}",
            # The step's own checks failing (a wrong type, an unstorable value) repeat on retry.
            "retryable": not isinstance(exc, FunadeError),
        }
    result["seconds"] = time.monotonic() - started
    sys.stdout.flush()
    sys.stderr.flush()
    temp = out_dir / f".{RESULT}.part"
    temp.write_text(json.dumps(result, default=str))
    os.replace(temp, out_dir / RESULT)
    return 0 if result["ok"] else 1


def _split(step: Step[..., Any], returned: Any, where: str) -> dict[str, Any]:
    names = list(step.outputs)
    if not names:
        return {}
    if names == [SINGLE]:
        return {SINGLE: returned}
    if not isinstance(returned, tuple) or len(returned) != len(names):
        raise InvalidInputError(
            f"{where} returned {type(returned).__name__}, but it declares the outputs "
            f"{', '.join(names)}.",
            value=type(returned).__name__,
            fix="Return the NamedTuple of its return annotation.",
        )
    return dict(zip(names, returned, strict=True))


def _plain(value: Any) -> Any:
    """A numpy scalar (``np.float64(0.93)`` from ``arr.mean()``) as the Python number it is, so
    it is stored as JSON, fits an ``int``/``float`` annotation, and conditions can compare it."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic) and value.ndim == 0:
        item = value.item()
        if isinstance(item, bool | int | float | str):
            return item
    return value


def _describe(encoded: serializers.Encoded) -> dict[str, Any]:
    return {
        "digest": encoded.digest,
        "kind": encoded.kind,
        "size": encoded.size,
        "type_name": encoded.type_name,
        "value": encoded.value,
        "inline": encoded.kind == "json" and encoded.size <= serializers.INLINE_LIMIT,
        "length": encoded.length,
        "path": str(encoded.path),
    }
