"""YAML without YAML 1.1's surprises, for the config file and ``--param`` values.

PyYAML reads YAML 1.1, where ``no``, ``on`` and ``off`` are booleans, ``0o17`` and ``012`` are
octal, ``1:30`` is ninety, ``2024-01-02`` a date and ``1e-3`` a string. Two loaders here:

- :func:`load_typed` resolves plain scalars as YAML 1.2's core schema does: ``true``/``false``,
  ``null``/``~``/empty, decimal integers, decimal floats (``1e-3``, ``.5``, ``.inf``); anything
  else is a string (``on``, ``0o17``, ``1:30``, ``2024-01-02``, ``1_000``).
- :func:`load_text` resolves nothing: every scalar is its text, so a parameter's value is parsed
  by the parameter's declared type, as ``--param`` text is (``pipelines.params``).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["load_text", "load_typed"]


class _TypedLoader(yaml.SafeLoader):
    pass


class _TextLoader(yaml.SafeLoader):
    pass


for _loader in (_TypedLoader, _TextLoader):
    _loader.yaml_implicit_resolvers = {}  # not the SafeLoader's YAML 1.1 ones
    _loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])

_TypedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_TypedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
_TypedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_TypedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


def _bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int(str(loader.construct_scalar(node)), 10)  # "012" is twelve, not ten


def _float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.lstrip("+-") == ".inf":
        return float(text.replace(".inf", "inf"))
    if text == ".nan":
        return float("nan")
    return float(text)


_TypedLoader.add_constructor("tag:yaml.org,2002:bool", _bool)
_TypedLoader.add_constructor("tag:yaml.org,2002:int", _int)
_TypedLoader.add_constructor("tag:yaml.org,2002:float", _float)


def load_typed(text: str) -> Any:
    """``text`` read with YAML 1.2 core-schema scalars (``yaml.YAMLError`` if malformed)."""
    return yaml.load(text, Loader=_TypedLoader)  # noqa: S506 - a safe loader


def load_text(text: str) -> Any:
    """``text`` read with every scalar kept as its text (``yaml.YAMLError`` if malformed)."""
    return yaml.load(text, Loader=_TextLoader)  # noqa: S506 - a safe loader
