"""Path and query parameters with the bounds of what the store keeps (``funade.limits``).

An integer in a URL is whatever digits the client wrote; past the store's 32-bit columns a
lookup fails in the database (SQLite cannot even bind one past 64 bits), so each is bounded
here and a number outside is a 422 that names the parameter.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from funade.limits import INT32_MAX, MAX_DIGEST, MAX_NAME, MAX_SHORT

RunId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The run's id.")]
VersionNumber = Annotated[int, Path(ge=1, le=INT32_MAX, description="The version's number.")]
ScheduleId = Annotated[
    int | None, Query(ge=1, le=INT32_MAX, description="Only runs of this schedule.")
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1024,
        description="The `next_cursor` of the previous page, unchanged (omit for page one).",
    ),
]
VersionRef = Annotated[
    str, Path(max_length=MAX_SHORT, description="A version number, an alias, or `latest`.")
]
CacheKey = Annotated[str, Path(max_length=MAX_DIGEST, description="A step's cache key.")]
StepName = Annotated[
    str | None, Query(max_length=MAX_NAME + 32, description="A step's instance or node name.")
]
