"""The time logic of pipeline schedules: cron expressions in a time zone, and which ticks are due.

Pure functions: nothing here reads the clock or does I/O, ``now`` is always passed in, so the
answers are deterministic. Every datetime going in must be timezone-aware; every datetime coming
out is aware and in UTC.

Cron expressions have five fields (minute hour day-of-month month day-of-week) and are matched
against the *wall clock* of the schedule's time zone. Around daylight-saving changes:

* a wall time that does not exist (spring forward, e.g. 02:30 on 2024-03-10 in America/New_York)
  is read with the offset from before the gap, as RFC 5545 does: it fires once, shifted forward
  by the length of the gap (02:30 EST = 03:30 EDT). Times that collapse onto the same instant
  fire once.
* a wall time that occurs twice (fall back, e.g. 01:30 on 2024-11-03 in America/New_York) fires
  once, at its first occurrence, unless the hour field is ``*``: such schedules (hourly, every
  minute, ...) follow elapsed time and also fire during the repeated hour.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from funade.errors import InvalidInputError

__all__ = ["Due", "MisfirePolicy", "check_cron", "check_timezone", "due_ticks", "next_times"]

MisfirePolicy = Literal["skip", "catch_up"]

_CRON_FIX = (
    'Use five fields "minute hour day-of-month month day-of-week", '
    'e.g. "0 3 * * *" = every day at 03:00, "*/15 * * * *" = every 15 minutes.'
)
_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-6 or SUN-SAT"),
)
# Larger than any daylight-saving shift in the tz database (at most 2 hours): fire times are
# produced in wall-clock order and released in UTC order once no later wall time can precede them.
_MAX_SHIFT = timedelta(hours=3)
_PROBE = datetime(2000, 1, 1)  # a fixed start to check that an expression ever fires


@dataclass(frozen=True)
class Due:
    """What a scheduler should do now: start one run per tick in ``ticks`` (oldest first)."""

    ticks: list[datetime]
    skipped: int  # fire times in the window that were dropped by the misfire policy
    next_at: datetime  # the first fire time after now


def check_cron(expr: str, *, field: str = "cron") -> str:
    """``expr`` normalised (single spaces) if it is a valid five-field cron expression."""
    if not isinstance(expr, str) or not expr.strip():
        message = f"{field} is empty; it must be a cron expression."
        raise InvalidInputError(message, field=field, value=expr, fix=_CRON_FIX)
    parts = expr.split()
    if len(parts) != 5:
        raise InvalidInputError(
            f"{field} {expr!r} has {len(parts)} field(s); a cron expression has exactly 5.",
            field=field,
            value=expr,
            fix=_CRON_FIX,
        )
    normal = " ".join(parts)
    try:
        croniter(normal, _PROBE).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidInputError(
            f"{field} {expr!r} never fires (no date matches it).",
            field=field,
            value=expr,
            fix=_CRON_FIX,
        ) from None
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidInputError(
            f"{field} {expr!r} is not a valid cron expression: {_which_part(parts) or exc}.",
            field=field,
            value=expr,
            fix=_CRON_FIX,
        ) from None
    return normal


def _which_part(parts: list[str]) -> str | None:
    for i, (name, allowed) in enumerate(_FIELDS):
        probe = ["*"] * 5
        probe[i] = parts[i]
        try:
            croniter(" ".join(probe), _PROBE)
        except (CroniterError, ValueError, KeyError):
            return f"its {name} field {parts[i]!r} is out of range or malformed ({allowed})"
    return None


def check_timezone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The IANA time zone called ``name``."""
    fix = 'Use an IANA time zone name, e.g. "UTC", "Europe/Berlin" or "Asia/Tokyo".'
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"{field} is empty.", field=field, value=name, fix=fix)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(
            f"{field} {name!r} is not a known time zone.", field=field, value=name, fix=fix
        ) from None


def _aware(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(
            f"{field} must be a timezone-aware datetime, got {value!r}.",
            field=field,
            value=value,
            fix="Pass an aware datetime, e.g. datetime.now(timezone.utc).",
        )
    return value.astimezone(UTC)


def _instants(wall: datetime, zone: ZoneInfo, both_folds: bool) -> list[datetime]:
    """The UTC instants at which the naive wall-clock time ``wall`` fires in ``zone``."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(zone).replace(tzinfo=None) != wall:  # in a gap: offset before the gap
        return [first]
    return [first, second] if both_folds else [first]  # occurs twice


def _fire_times(expr: str, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``after`` (UTC), increasing, without end."""
    walls = croniter(expr, after.astimezone(zone).replace(tzinfo=None) - _MAX_SHIFT)
    both_folds = walls.expanded[1] == ["*"]
    pending: list[datetime] = []
    last = after
    while True:
        instants = _instants(walls.get_next(datetime), zone, both_folds)
        for t in instants:
            heapq.heappush(pending, t)
        while pending and pending[0] < min(instants) - _MAX_SHIFT:
            t = heapq.heappop(pending)
            if t > last:
                last = t
                yield t


def next_times(expr: str, tz: str, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times of ``expr`` in time zone ``tz`` strictly after ``after``."""
    expr = check_cron(expr)
    zone = check_timezone(tz)
    start = _aware(after, "after")
    if not isinstance(count, int) or count < 0:
        raise InvalidInputError(
            f"count must be a whole number >= 0, got {count!r}.", field="count", value=count
        )
    times = _fire_times(expr, zone, start)
    return [next(times) for _ in range(count)]


def due_ticks(
    expr: str,
    tz: str,
    *,
    last_tick: datetime | None,
    created_at: datetime,
    now: datetime,
    misfire: MisfirePolicy,
    max_catch_up: int = 100,
) -> Due:
    """The ticks that should start runs now: fire times t with (last_tick or created_at) < t <= now.

    ``"skip"`` keeps only the latest of them; ``"catch_up"`` keeps all, oldest first, capped at the
    ``max_catch_up`` most recent. The caller stores the last returned tick as the new
    ``last_tick``; calling again with the same ``now`` then returns no ticks.
    """
    expr = check_cron(expr)
    zone = check_timezone(tz)
    end = _aware(now, "now")
    if last_tick is None:
        start = _aware(created_at, "created_at")
    else:
        _aware(created_at, "created_at")
        start = _aware(last_tick, "last_tick")
    if misfire not in ("skip", "catch_up"):
        raise InvalidInputError(
            f"misfire must be 'skip' or 'catch_up', got {misfire!r}.",
            field="misfire",
            value=misfire,
            fix="Use 'skip' to run once for missed ticks, 'catch_up' to run once per missed tick.",
        )
    if not isinstance(max_catch_up, int) or max_catch_up < 1:
        raise InvalidInputError(
            f"max_catch_up must be a whole number >= 1, got {max_catch_up!r}.",
            field="max_catch_up",
            value=max_catch_up,
        )
    keep = 1 if misfire == "skip" else max_catch_up
    window: deque[datetime] = deque(maxlen=keep)
    total = 0
    times = _fire_times(expr, zone, start)
    t = next(times)
    while t <= end:
        total += 1
        window.append(t)
        t = next(times)
    return Due(ticks=list(window), skipped=total - len(window), next_at=t)
