"""Durations as people write them: read (``parse_seconds``) and written (``format_seconds``)."""

from __future__ import annotations

import pytest

from funade.durations import format_seconds, parse_seconds


@pytest.mark.parametrize(
    ("seconds", "text"), [(12.5, "12.5s"), (59, "59s"), (90, "1.5m"), (600, "10m"), (7200, "2h")]
)
def test_seconds_are_written_in_the_largest_unit_up_to_hours(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text
    assert parse_seconds(text, field="t", label="t") == seconds
