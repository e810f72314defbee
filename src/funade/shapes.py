"""Request fields with the limits of what the store keeps, shared by every package that defines
JSON shapes (the REST API's, the pipelines' runs and schedules): pydantic only, no web imports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from funade.limits import (
    INT32_MAX,
    MAX_DESCRIPTION,
    MAX_DIGEST,
    MAX_METRIC_KEY,
    MAX_METRICS,
    MAX_NAME,
    MAX_PARAM_KEY,
    MAX_PARAMS,
    MAX_PROJECT_NAME,
    MAX_SHORT,
    MAX_SOURCE,
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    MAX_TAGS,
    MAX_WORD,
)

__all__ = [
    "Count",
    "Description",
    "Digest",
    "Instant",
    "Int32",
    "Metrics",
    "Name",
    "Number",
    "Params",
    "ProjectName",
    "Short",
    "Source",
    "Strict",
    "Tags",
    "Word",
]


class Strict(BaseModel):
    """A request body: unknown fields are refused (and, by ``api/strictjson.py`` before the
    body is parsed, non-finite numbers, lone surrogates and integers past 64 bits)."""

    model_config = ConfigDict(extra="forbid")


# Request fields with the limits of what the store keeps (funade.limits): past them, a 422 that
# names the field, never a database error. Integers the store keeps in 32-bit columns:
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
Number = Annotated[int, Field(ge=1, le=INT32_MAX, description="A version or revision number.")]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION)]
Name = Annotated[str, Field(max_length=MAX_NAME)]
ProjectName = Annotated[str, Field(max_length=MAX_PROJECT_NAME)]
Short = Annotated[str, Field(max_length=MAX_SHORT)]
Word = Annotated[str, Field(max_length=MAX_WORD)]
Source = Annotated[str, Field(max_length=MAX_SOURCE)]
Digest = Annotated[str, Field(max_length=MAX_DIGEST)]
Tags = Annotated[
    dict[
        Annotated[str, Field(max_length=MAX_TAG_KEY)],
        Annotated[str, Field(max_length=MAX_TAG_VALUE)],
    ],
    Field(
        max_length=MAX_TAGS,
        description="Up to 256 tags: keys up to 128, values up to 512 characters.",
    ),
]
Metrics = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=MAX_METRIC_KEY)], float],
    Field(
        max_length=MAX_METRICS, description="Up to 1000 finite numbers, keys up to 128 characters."
    ),
]


def _storable(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)  # what the store keeps
    except OverflowError:
        raise ValueError("it is outside the years 1 to 9999 once in UTC") from None
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_storable)]
"""A time with its zone, that the store can keep in UTC (9999-12-31T23:59-05:00 it cannot)."""
Params = Annotated[
    dict[Annotated[str, Field(max_length=MAX_PARAM_KEY)], Any],
    Field(max_length=MAX_PARAMS, description="Up to 1000 entries, keys up to 256 characters."),
]
