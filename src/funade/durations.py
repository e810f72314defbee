"""Durations as people write them: a number of seconds, or a number with s, m, h or d."""

from __future__ import annotations

from funade.errors import InvalidInputError

__all__ = ["format_seconds", "parse_seconds"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_seconds(value: float | str, *, field: str, label: str) -> float:
    """``30``, ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"`` → seconds. ``label`` starts the error
    message (``--pause``, or ``step 'train': timeout``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        if text and text[-1] in _UNITS:
            return float(text[:-1]) * _UNITS[text[-1]]
        return float(text)
    except ValueError:
        raise InvalidInputError(
            f"{label} {value!r} is not a duration.",
            field=field,
            value=value,
            fix="Give seconds, or a number with s, m, h or d, e.g. '30s' or '10m'.",
        ) from None


def format_seconds(seconds: float) -> str:
    """Seconds as :func:`parse_seconds` reads them back, in the largest unit up to hours:
    ``90`` → ``"1.5m"``, ``7200`` → ``"2h"``, ``12.5`` → ``"12.5s"``."""
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    if seconds >= 60:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
