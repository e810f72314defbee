"""Finding a pipeline from a reference: ``path/to/train.py:training`` or ``pkg.module:training``.

A file is imported under its stem as module name (``train``), with its directory first on
``sys.path`` so that it can import its neighbours, the way ``python train.py`` would. The
runner and the step processes load it the same way, so a step's ``module:qualname`` names the
same function in both. The project's modules are compiled from their source, and those edited
since this process imported them are imported afresh (``codefresh``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from pathlib import Path

from funade.errors import InvalidInputError
from funade.pipelines import codefresh
from funade.pipelines.dsl import Pipeline

__all__ = ["load_pipeline", "normalize_target"]


def normalize_target(target: str) -> str:
    """``file.py[:name]`` with the file made absolute (a run records where its code is)."""
    path_text, sep, name = target.rpartition(":") if _has_name(target) else (target, "", "")
    if path_text.endswith(".py"):
        return f"{Path(path_text).resolve()}{sep}{name}"
    return target


def _has_name(target: str) -> bool:
    _, sep, tail = target.rpartition(":")
    return bool(sep) and bool(tail) and "/" not in tail and not tail.endswith(".py")


def load_pipeline(target: str) -> Pipeline:
    """Import the module ``target`` names and return its pipeline (the only one, if no name)."""
    where, _, name = target.rpartition(":") if _has_name(target) else (target, "", "")
    by_path = where.endswith(".py") or "/" in where
    if by_path:  # its neighbours first, as `python train.py` (and the step processes) have them
        directory = str(Path(where).resolve().parent)
        if sys.path[:1] != [directory]:  # first again, after another pipeline's directory
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)
            sys.path.insert(0, directory)
    codefresh.install()
    codefresh.forget_changed()  # modules edited since this process imported them: afresh
    importlib.invalidate_caches()  # and files created since their directory was last listed
    if by_path:
        module = _load_file(Path(where), target)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise InvalidInputError(
                f"Cannot import {where!r} for pipeline {target!r}: {exc}.",
                field="pipeline",
                value=target,
                fix="Give a file (train.py:training) or an importable module (pkg.train:training).",
            ) from None
    found = {k: v for k, v in vars(module).items() if isinstance(v, Pipeline)}
    if name:
        pipeline = getattr(module, name, None)
        if not isinstance(pipeline, Pipeline):
            raise InvalidInputError(
                f"{where} has no pipeline {name!r}"
                + (f"; it has {', '.join(sorted(found))}." if found else "."),
                field="pipeline",
                value=target,
                fix="Decorate the function with @funade.pipeline, or fix the name after ':'.",
            )
        return pipeline
    if len(found) != 1:
        raise InvalidInputError(
            f"{where} has {len(found) or 'no'} pipelines"
            + (f" ({', '.join(sorted(found))})" if found else "")
            + "; say which one to run.",
            field="pipeline",
            value=target,
            fix=f"Give it after a colon, e.g. {where}:{next(iter(sorted(found)), 'training')}.",
        )
    return next(iter(found.values()))


def _load_file(path: Path, target: str) -> object:
    path = path.resolve()
    if not path.is_file():
        raise InvalidInputError(
            f"Pipeline file {str(path)!r} does not exist.",
            field="pipeline",
            value=target,
            fix="Give the path of a Python file, e.g. train.py:training.",
        )
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(path.stem)
    sys.modules[path.stem] = module
    try:
        # Compiled from the file as it is now, never from a cached .pyc: one rewritten within
        # the same second at the same size (a quick fix, a revert) passes the cache's check.
        data = path.read_bytes()
        module.__dict__[codefresh.MARK] = codefresh.record(str(path), data, by_path=True)
        code = compile(data, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - the pipeline the user asked to run
    except Exception as exc:
        if previous is not None:
            sys.modules[path.stem] = previous
        else:
            sys.modules.pop(path.stem, None)
        raise InvalidInputError(
            f"Importing {path.name} failed: {type(exc).__name__}: {exc}.",
            field="pipeline",
            value=target,
            fix="Fix the error in the file (run `python " + path.name + "` to see it whole).",
        ) from exc
    return module
