"""Pipeline parameters: defaults, the environment's values, the run's stored values, then the
caller's, each checked against the parameter's type before anything runs.

Text (``--param name=value``, and the config file's ``params:``) is parsed by the parameter's
declared type, never as YAML 1.1: a ``str`` gets the text as written (``no``, ``0o17``,
``1:30``, ``2024-01-02`` stay text); an ``int`` takes decimal digits (``1_000`` too); a ``float``
takes any decimal number (``1e-3``, ``.5``); a ``bool`` takes true/false (also yes/no, on/off,
1/0); ``X | None`` takes ``null``; a list, tuple or dict takes JSON or YAML flow (``[0.1, 1]``,
``{a: 1}``) whose items are parsed by their own types. A parameter without a type takes its
default's type, else a JSON number, boolean, null, list or object, else the text. Every value
must be JSON (a run stores its parameters and hands them to its steps as JSON).
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from funade.errors import ConflictError, InvalidInputError
from funade.pipelines.dsl import Pipeline
from funade.pipelines.spec import NodeSpec, PipelineSpec
from funade.pipelines.yamltext import load_text

__all__ = ["bind_params", "check_resume_params", "consumers", "parse_assignments"]


def parse_assignments(pairs: Iterable[str], *, field: str = "param") -> dict[str, str]:
    """``["lr=0.1", "name=x"]`` → ``{"lr": "0.1", "name": "x"}`` (values still text)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInputError(
                f"--{field} {pair!r} is not NAME=VALUE.",
                field=field,
                value=pair,
                fix=f"Write it as --{field} lr=0.1.",
            )
        out[name.strip()] = value
    return out


def bind_params(
    pipeline: Pipeline,
    *,
    given: Mapping[str, Any] | None = None,
    text: Mapping[str, str] | None = None,
    env: Mapping[str, Any] | None = None,
    env_name: str | None = None,
    stored: Mapping[str, Any] | None = None,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """Every parameter's value: the default, overridden by ``env`` (the config's ``params``,
    read as text), then ``stored`` (a recorded run's JSON values), then ``given`` (Python
    values, checked strictly) and ``text`` (``--param`` strings, parsed by type).
    ``allow_missing`` leaves out required parameters nobody gave (compiling for another
    engine, where they are given when the run is submitted)."""
    where = f"pipeline {pipeline.name!r}"
    signature = pipeline.signature.parameters
    supplied: dict[str, tuple[Any, str, str]] = {}
    for kind, source, values in (
        ("env", f"environment {env_name!r}", env or {}),
        ("stored", "the recorded run", stored or {}),
        ("call", "the call", given or {}),
        ("text", "--param", text or {}),
    ):
        for name, value in values.items():
            if name not in signature:
                known = ", ".join(signature) or "none"
                raise InvalidInputError(
                    f"{where} has no parameter {name!r} (given in {source}).",
                    field=f"params.{name}",
                    value=name,
                    fix=f"Its parameters are: {known}.",
                )
            supplied[name] = (value, kind, source)
    out: dict[str, Any] = {}
    for name, parameter in signature.items():
        annotation = _unwrap(pipeline.hints.get(name, parameter.annotation))
        if name not in supplied:
            if parameter.default is inspect.Parameter.empty:
                if allow_missing:
                    continue
                raise InvalidInputError(
                    f"{where}: parameter {name!r} is required and was not given.",
                    field=f"params.{name}",
                    fix=f"Pass it with --param {name}=<value>.",
                )
            out[name] = parameter.default
            continue
        value, kind, source = supplied[name]
        typed = _Typed(where, name, annotation, parameter.default, source, kind)
        out[name] = _storable(typed, typed.convert(value), given=value)
    return out


class _Typed:
    """Converting one supplied value of one parameter, and saying what is wrong with it."""

    def __init__(
        self, where: str, name: str, annotation: Any, default: Any, source: str, kind: str
    ) -> None:
        self.where, self.name, self.source, self.kind = where, name, source, kind
        self.untyped = annotation is inspect.Parameter.empty or annotation is Any
        if self.untyped and type(default) in (bool, int, float, str):
            annotation, self.untyped = type(default), False  # typed by its default
        self.annotation = annotation

    def convert(self, value: Any) -> Any:
        if self.untyped:
            return _untyped(value) if self.kind in ("text", "env") else value
        if self.kind == "call":
            return self._strict(value)
        if self.kind == "stored":
            return self._validate(value, json_mode=True)
        if isinstance(value, str):
            return self._text(value)
        return self._validate(value)  # a list or mapping of texts, from the config file

    def _text(self, text: str) -> Any:
        if self.annotation is str:
            return text
        if text.strip() in ("null", "None") and _allows_none(self.annotation):
            return None
        if text.lstrip()[:1] in ("[", "{"):
            try:
                tree = load_text(text)
            except yaml.YAMLError:
                tree = None
            if isinstance(tree, list | dict):
                try:
                    return TypeAdapter(self.annotation).validate_python(tree)
                except ValidationError:
                    pass
                except Exception:  # a type pydantic cannot check (an arbitrary class)
                    return text
        return self._validate(text)

    def _validate(self, value: Any, *, json_mode: bool = False) -> Any:
        try:
            adapter = TypeAdapter(self.annotation)
            if json_mode:
                return adapter.validate_json(json.dumps(value))
            return adapter.validate_python(value)
        except ValidationError:
            raise self.error(value) from None
        except Exception:  # a type pydantic cannot check (an arbitrary class): trust it
            return value

    def _strict(self, value: Any) -> Any:
        if self.annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        try:
            return TypeAdapter(self.annotation).validate_python(value, strict=True)
        except ValidationError:
            raise self.error(value) from None
        except Exception:  # a type pydantic cannot check (an arbitrary class): trust it
            return value

    def expected(self) -> str:
        return _type_name(self.annotation)

    def error(self, value: Any) -> InvalidInputError:
        return InvalidInputError(
            f"{self.where}: parameter {self.name!r} = {value!r} (from {self.source}) is not of "
            f"its type, {self.expected()}.",
            field=f"params.{self.name}",
            value=value,
            fix=self.fix(),
        )

    def fix(self) -> str:
        example = _example(self.annotation)
        if self.kind == "text":
            return f"Write {example[0]}, e.g. --param {self.name}={example[1]}."
        if self.kind == "env":
            return f"Set params.{self.name} in the config file to {example[0]}."
        return f"Give a value of type {self.expected()} for {self.name!r}."


def _storable(typed: _Typed, value: Any, *, given: Any) -> Any:
    """``value``, if a run can store it and hand it to its steps: as JSON."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        raise InvalidInputError(
            f"{typed.where}: parameter {typed.name!r} = {given!r} (from {typed.source}) is not "
            "a finite number; a run's parameters are stored as JSON, which has no NaN or "
            "infinity.",
            field=f"params.{typed.name}",
            value=str(given),
            fix="Give a finite number (1e308 is as large as a float gets).",
        ) from None
    except TypeError:
        raise InvalidInputError(
            f"{typed.where}: parameter {typed.name!r} = {value!r} (from {typed.source}) is a "
            f"{type(value).__name__}, which a run cannot store or pass to its steps: parameters "
            "are JSON values (strings, numbers, booleans, null, lists and objects of them).",
            field=f"params.{typed.name}",
            value=str(given),
            fix="Declare it as a JSON type (a str for a date, say) and convert it in the step.",
        ) from None
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity are not JSON; they stay text


def _untyped(value: Any) -> Any:
    """A value for a parameter with no type: JSON numbers, booleans, null, lists and objects
    are read as such (in lists and mappings of the config file, too), anything else is text."""
    if isinstance(value, list):
        return [_untyped(item) for item in value]
    if isinstance(value, dict):
        return {key: _untyped(item) for key, item in value.items()}
    if not isinstance(value, str):
        return value
    if value.lstrip()[:1] in ("[", "{"):
        try:
            tree = load_text(value)
        except yaml.YAMLError:
            return value
        return _untyped(tree) if isinstance(tree, list | dict) else value
    try:
        parsed = json.loads(value, parse_constant=_reject_constant)
    except ValueError:
        return value
    return parsed if not isinstance(parsed, list | dict) else value


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _allows_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(annotation)
    return annotation is None or annotation is type(None)


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if isinstance(origin, type) and args:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _example(annotation: Any) -> tuple[str, str]:
    """How to write a value of ``annotation`` (in words, and an example)."""
    if _allows_none(annotation):
        others = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(others) == 1:
            words, example = _example(others[0])
            return (f"{words} (or null)", example)
    examples: dict[Any, tuple[str, str]] = {
        int: ("a whole number", "10"),
        float: ("a number", "0.001 (or 1e-3)"),
        bool: ("true or false", "true"),
    }
    if annotation in examples:
        return examples[annotation]
    origin = typing.get_origin(annotation)
    if (isinstance(origin, type) and issubclass(origin, Mapping)) or (
        isinstance(annotation, type) and hasattr(annotation, "model_fields")
    ):
        return ("a JSON object", "'{\"key\": 1}'")
    if isinstance(origin, type) and issubclass(origin, Iterable) and origin is not str:
        return ("a JSON list", "'[1, 2]'")
    return (f"a {_type_name(annotation)}", "<value>")


# Resuming with other parameters -----------------------------------------------------------


def _uses(node: NodeSpec, param: str) -> bool:
    bindings = list(node.inputs.values())
    bindings += [b for c in node.when for b in (c.left, c.right) if b is not None]
    return any(b.kind == "param" and b.param == param for b in bindings)


def consumers(spec: PipelineSpec, param: str) -> set[str]:
    """The steps whose work depends on ``param``: those that take it (as an input, a fan-out
    list or in a condition) and every step downstream of them."""
    found: set[str] = set()
    for node in spec.nodes:  # in a topological order: upstream steps come first
        if _uses(node, param) or found.intersection(node.upstream()):
            found.add(node.id)
    return found


def check_resume_params(
    run_id: int,
    spec: PipelineSpec,
    done: Mapping[str, str],
    changes: Mapping[str, tuple[Any, Any]],
) -> None:
    """Refuse to change (``changes``: name → (old, new)) a parameter that a step whose outputs
    the resume reuses (``done``: instance → node) already consumed, directly or upstream."""
    for name, (old, new) in changes.items():
        used = consumers(spec, name)
        steps = sorted(instance for instance, node in done.items() if node in used)
        if steps:
            shown = ", ".join(steps[:5]) + (f" and {len(steps) - 5} more" if len(steps) > 5 else "")
            raise ConflictError(
                f"Run {run_id}: parameter {name!r} cannot change from {old!r} to {new!r} on "
                f"resume: step(s) {shown} already used it and succeeded, and the resume reuses "
                "their outputs.",
                field=f"params.{name}",
                value=new,
                fix=f"Resume without --param {name} (it stays {old!r}), or start a new run "
                f"with `funade pipeline run ... --param {name}=...`.",
            )
