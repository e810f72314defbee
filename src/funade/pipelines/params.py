"""Pipeline parameters: defaults, the environment's values, then the caller's, each checked
against the parameter's type before anything runs."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from funade.errors import InvalidInputError
from funade.pipelines.dsl import Pipeline

__all__ = ["bind_params", "parse_assignments"]


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
) -> dict[str, Any]:
    """Every parameter's value: the default, overridden by ``env`` (the config's ``params``),
    then by ``given`` (Python values) and ``text`` (``--param`` strings, parsed as YAML
    scalars unless the parameter is a ``str``)."""
    where = f"pipeline {pipeline.name!r}"
    signature = pipeline.signature.parameters
    supplied: dict[str, tuple[Any, str]] = {}
    for source, values in (
        (f"environment {env_name!r}", env or {}),
        ("the call", given or {}),
        ("--param", text or {}),
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
            supplied[name] = (value, source)
    out: dict[str, Any] = {}
    for name, parameter in signature.items():
        annotation = pipeline.hints.get(name, parameter.annotation)
        if name not in supplied:
            if parameter.default is inspect.Parameter.empty:
                raise InvalidInputError(
                    f"{where}: parameter {name!r} is required and was not given.",
                    field=f"params.{name}",
                    fix=f"Pass it with --param {name}=<value>.",
                )
            out[name] = parameter.default
            continue
        value, source = supplied[name]
        if source == "--param" and annotation is not str:
            value = _parse_text(value)
        out[name] = _check(where, name, value, annotation, source)
    return out


def _parse_text(value: str) -> Any:
    try:
        return yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        return value


def _check(where: str, name: str, value: Any, annotation: Any, source: str) -> Any:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    try:
        checked = TypeAdapter(annotation).validate_python(value, strict=True)
    except ValidationError:
        expected = getattr(annotation, "__name__", str(annotation))
        raise InvalidInputError(
            f"{where}: parameter {name!r} = {value!r} (from {source}) is not of its type, "
            f"{expected}.",
            field=f"params.{name}",
            value=value,
            fix=f"Give a value of type {expected} for {name!r}.",
        ) from None
    except Exception:  # a type pydantic cannot check (an arbitrary class): trust it
        return value
    return checked
