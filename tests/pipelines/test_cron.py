"""Schedule time logic: cron validation, fire times in a time zone, DST, and misfire handling."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from funade.errors import InvalidInputError
from funade.pipelines.cron import Due, check_cron, check_timezone, due_ticks, next_times

NY = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- validation -------------------------------------------------------------------------------


def test_check_cron_accepts_and_normalises() -> None:
    assert check_cron("0 3 * * *") == "0 3 * * *"
    assert check_cron("  */15   *  * * MON-FRI ") == "*/15 * * * MON-FRI"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("61 * * * *", "its minute field '61' is out of range or malformed (0-59)"),
        ("0 24 * * *", "its hour field '24' is out of range or malformed (0-23)"),
        ("* * *", "has 3 field(s); a cron expression has exactly 5"),
        ("* * * * * *", "has 6 field(s); a cron expression has exactly 5"),
        ("", "schedule.cron is empty"),
        ("   ", "schedule.cron is empty"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_check_cron_rejects(expr: str, expected: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_cron(expr, field="schedule.cron")
    err = info.value
    assert expected in str(err)
    assert err.field == "schedule.cron"
    assert err.value == expr
    assert err.fix is not None
    assert '"0 3 * * *" = every day at 03:00' in err.fix
    assert err.fix in str(err)


def test_check_timezone() -> None:
    assert check_timezone("Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    with pytest.raises(InvalidInputError) as info:
        check_timezone("Mars/Olympus_Mons", field="schedule.timezone")
    err = info.value
    assert "schedule.timezone 'Mars/Olympus_Mons' is not a known time zone" in str(err)
    assert err.field == "schedule.timezone"
    assert err.value == "Mars/Olympus_Mons"
    assert err.fix is not None
    assert "Asia/Tokyo" in err.fix
    assert "UTC" in err.fix
    with pytest.raises(InvalidInputError, match="is empty"):
        check_timezone("")
    with pytest.raises(InvalidInputError, match="not a known time zone"):
        next_times("0 3 * * *", "Nowhere/Special", utc(2024, 1, 1), 1)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2024, 1, 1, 12)
    with pytest.raises(InvalidInputError, match="after must be a timezone-aware datetime"):
        next_times("* * * * *", "UTC", naive, 1)
    for name in ("now", "created_at", "last_tick"):
        kwargs: dict[str, Any] = {
            "last_tick": utc(2024, 1, 1),
            "created_at": utc(2024, 1, 1),
            "now": utc(2024, 1, 2),
        }
        kwargs[name] = naive
        with pytest.raises(InvalidInputError) as info:
            due_ticks("* * * * *", "UTC", misfire="skip", **kwargs)
        assert info.value.field == name
        assert f"{name} must be a timezone-aware datetime" in str(info.value)
        assert "datetime.now(timezone.utc)" in str(info.value)


# --- next_times -------------------------------------------------------------------------------


def test_next_times_every_minute_is_strictly_after() -> None:
    assert next_times("* * * * *", "UTC", utc(2024, 1, 1, 12, 0), 3) == [
        utc(2024, 1, 1, 12, 1),
        utc(2024, 1, 1, 12, 2),
        utc(2024, 1, 1, 12, 3),
    ]
    assert next_times("* * * * *", "UTC", utc(2024, 1, 1, 12, 0, 30), 1) == [utc(2024, 1, 1, 12, 1)]
    assert next_times("* * * * *", "UTC", utc(2024, 1, 1), 0) == []


def test_next_times_daily_in_tokyo_fires_at_1800_utc() -> None:
    times = next_times("0 3 * * *", "Asia/Tokyo", utc(2024, 1, 1, 0, 0), 3)
    assert times == [utc(2024, 1, 1, 18), utc(2024, 1, 2, 18), utc(2024, 1, 3, 18)]
    assert all(t.tzinfo is UTC for t in times)
    # an aware `after` in another zone means the same instant
    assert next_times("0 3 * * *", "Asia/Tokyo", utc(2024, 1, 1).astimezone(NY), 1) == times[:1]


def test_dst_spring_forward_nonexistent_time_fires_once_shifted() -> None:
    # 2024-03-10 in New York: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist.
    times = next_times("30 2 * * *", "America/New_York", utc(2024, 3, 9, 12), 3)
    assert times == [
        utc(2024, 3, 10, 7, 30),  # 02:30 EST = 03:30 EDT, once
        utc(2024, 3, 11, 6, 30),  # 02:30 EDT
        utc(2024, 3, 12, 6, 30),
    ]
    assert times[0].astimezone(NY).hour == 3
    # a sub-hourly schedule just skips the missing hour, with no double fire at 03:00
    quarter = next_times("*/30 * * * *", "America/New_York", utc(2024, 3, 10, 6, 0), 4)
    assert quarter == [
        utc(2024, 3, 10, 6, 30),  # 01:30 EST
        utc(2024, 3, 10, 7, 0),  # 03:00 EDT
        utc(2024, 3, 10, 7, 30),  # 03:30 EDT
        utc(2024, 3, 10, 8, 0),
    ]


def test_dst_fall_back_repeated_time_fires_once() -> None:
    # 2024-11-03 in New York: 02:00 EDT falls back to 01:00 EST, so 01:00-01:59 happens twice.
    assert next_times("30 2 * * *", "America/New_York", utc(2024, 11, 2, 12), 2) == [
        utc(2024, 11, 3, 7, 30),  # 02:30 EST
        utc(2024, 11, 4, 7, 30),
    ]
    assert next_times("30 1 * * *", "America/New_York", utc(2024, 11, 2, 12), 2) == [
        utc(2024, 11, 3, 5, 30),  # 01:30 EDT, first occurrence only
        utc(2024, 11, 4, 6, 30),  # 01:30 EST
    ]
    # hourly schedules follow elapsed time: they fire in both passes of the repeated hour
    hourly = next_times("30 * * * *", "America/New_York", utc(2024, 11, 3, 5), 3)
    assert hourly == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30), utc(2024, 11, 3, 7, 30)]


def test_next_times_are_increasing_and_unique_across_a_year_of_dst() -> None:
    times = next_times("*/20 * * * *", "America/New_York", utc(2024, 1, 1), 3 * 24 * 366)
    assert all(b - a == timedelta(minutes=20) for a, b in itertools.pairwise(times))


# --- due_ticks --------------------------------------------------------------------------------


def test_due_ticks_plain() -> None:
    due = due_ticks(
        "0 * * * *",
        "UTC",
        last_tick=utc(2024, 1, 1, 9),
        created_at=utc(2023, 1, 1),
        now=utc(2024, 1, 1, 10, 5),
        misfire="skip",
    )
    assert due == Due(ticks=[utc(2024, 1, 1, 10)], skipped=0, next_at=utc(2024, 1, 1, 11))


def test_due_ticks_first_time_counts_from_created_at() -> None:
    created = utc(2024, 1, 1, 12, 0, 30)
    due = due_ticks(
        "* * * * *", "UTC", last_tick=None, created_at=created, now=created, misfire="catch_up"
    )
    assert due == Due(ticks=[], skipped=0, next_at=utc(2024, 1, 1, 12, 1))
    due = due_ticks(
        "* * * * *",
        "UTC",
        last_tick=None,
        created_at=created,
        now=utc(2024, 1, 1, 12, 2, 59),
        misfire="catch_up",
    )
    assert due.ticks == [utc(2024, 1, 1, 12, 1), utc(2024, 1, 1, 12, 2)]
    assert due.next_at == utc(2024, 1, 1, 12, 3)


def test_due_ticks_daily_in_tokyo() -> None:
    due = due_ticks(
        "0 3 * * *",
        "Asia/Tokyo",
        last_tick=utc(2024, 1, 1, 18),
        created_at=utc(2023, 12, 1),
        now=utc(2024, 1, 2, 18, 0, 1),
        misfire="skip",
    )
    assert due == Due(ticks=[utc(2024, 1, 2, 18)], skipped=0, next_at=utc(2024, 1, 3, 18))


def test_misfire_after_three_hour_outage() -> None:
    # hourly; last run at 09:00; the scheduler was down and comes back at 12:10
    common: dict[str, Any] = {
        "last_tick": utc(2024, 1, 1, 9),
        "created_at": utc(2024, 1, 1),
        "now": utc(2024, 1, 1, 12, 10),
    }
    skip = due_ticks("0 * * * *", "UTC", misfire="skip", **common)
    assert skip == Due(ticks=[utc(2024, 1, 1, 12)], skipped=2, next_at=utc(2024, 1, 1, 13))
    catch_up = due_ticks("0 * * * *", "UTC", misfire="catch_up", **common)
    assert catch_up == Due(
        ticks=[utc(2024, 1, 1, 10), utc(2024, 1, 1, 11), utc(2024, 1, 1, 12)],
        skipped=0,
        next_at=utc(2024, 1, 1, 13),
    )
    capped = due_ticks("0 * * * *", "UTC", misfire="catch_up", max_catch_up=2, **common)
    assert capped == Due(
        ticks=[utc(2024, 1, 1, 11), utc(2024, 1, 1, 12)], skipped=1, next_at=utc(2024, 1, 1, 13)
    )


def test_last_tick_equal_to_now_does_not_fire_again() -> None:
    now = utc(2024, 1, 1, 12)
    for misfire in ("skip", "catch_up"):
        due = due_ticks(
            "0 * * * *", "UTC", last_tick=now, created_at=utc(2024, 1, 1), now=now, misfire=misfire
        )
        assert due == Due(ticks=[], skipped=0, next_at=utc(2024, 1, 1, 13))
    # a tick exactly at now is due (t <= now), and only once
    first = due_ticks(
        "0 * * * *",
        "UTC",
        last_tick=utc(2024, 1, 1, 11),
        created_at=utc(2024, 1, 1),
        now=now,
        misfire="skip",
    )
    assert first.ticks == [now]


def test_replaying_with_recorded_last_tick_gives_one_run_per_tick() -> None:
    """Simulate a scheduler that polls irregularly and restarts: every tick runs exactly once."""
    created = utc(2024, 3, 9, 0, 0)
    polls = [created + timedelta(minutes=m) for m in (7, 7, 45, 46, 200, 201, 201, 900, 2000, 2880)]
    last: datetime | None = None
    ran: list[datetime] = []
    for now in polls:
        due = due_ticks(
            "*/30 * * * *",
            "America/New_York",
            last_tick=last,
            created_at=created,
            now=now,
            misfire="catch_up",
            max_catch_up=10_000,
        )
        ran.extend(due.ticks)
        last = due.ticks[-1] if due.ticks else last
        assert due.next_at > now
    expected = next_times("*/30 * * * *", "America/New_York", created, len(ran))
    assert ran == expected
    assert ran[-1] <= polls[-1] < expected[-1] + timedelta(minutes=30)


def test_due_ticks_rejects_bad_options() -> None:
    args: dict[str, Any] = {
        "last_tick": None,
        "created_at": utc(2024, 1, 1),
        "now": utc(2024, 1, 2),
    }
    with pytest.raises(InvalidInputError, match="misfire must be 'skip' or 'catch_up'"):
        due_ticks("0 * * * *", "UTC", misfire="later", **args)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="max_catch_up must be"):
        due_ticks("0 * * * *", "UTC", misfire="catch_up", max_catch_up=0, **args)
    with pytest.raises(InvalidInputError, match="minute field '61'"):
        due_ticks("61 * * * *", "UTC", misfire="skip", **args)
