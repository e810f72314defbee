"""Schedules: exactly one run per tick (also across restarts and racing schedulers), misfire
policies, concurrency limits, pause and resume; the API; runs started on the control plane."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from funade.api.app import create_app
from funade.api.schemas import LaunchIn, RunOut, ScheduleIn
from funade.artifacts import ArtifactStore
from funade.bootstrap import bootstrap
from funade.client import Client
from funade.errors import ConflictError, InvalidInputError, PermissionDeniedError
from funade.pipelines import schedules as service
from funade.pipelines.schedules import Launcher, Scheduler
from funade.projects import get_project
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from funade.store import Database, create_database, upgrade
from funade.store.schema import PipelineRun, PipelineSchedule
from tests.conftest import make_settings
from tests.servers import serve

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path, database_url: str) -> Iterator[Database]:
    database = create_database(database_url)
    upgrade(database)
    bootstrap(make_settings(tmp_path / "home", database_url), database)
    yield database
    database.dispose()


def add_schedule(db: Database, *, cron: str = "0 * * * *", **options: object) -> int:
    with db.session() as session:
        row = service.create_schedule(
            session,
            get_project(session, "default"),
            name=str(options.pop("name", "hourly")),
            source="/nowhere/train.py:training",
            cron_expr=cron,
            timezone=str(options.pop("timezone", "UTC")),
            env=None,
            params={"rows": 5},
            misfire=str(options.pop("misfire", "skip")),
            max_concurrent=int(options.pop("max_concurrent", 1)),  # type: ignore[call-overload]
            paused=False,
            created_by=None,
        )
        row.created_at = T0
        return row.id


def runs(db: Database) -> list[PipelineRun]:
    with db.read() as session:
        return list(session.scalars(select(PipelineRun).order_by(PipelineRun.id)))


def test_each_tick_starts_exactly_one_run_also_after_a_restart(db: Database) -> None:
    add_schedule(db)
    launched: list[int] = []
    scheduler = Scheduler(db, launched.append)
    assert scheduler.step(T0 + timedelta(minutes=30)) == []
    started = scheduler.step(T0 + timedelta(hours=1, minutes=1))
    assert [s.tick for s in started] == [T0 + timedelta(hours=1)]
    assert scheduler.step(T0 + timedelta(hours=1, minutes=2)) == []
    restarted = Scheduler(db, launched.append)
    assert restarted.step(T0 + timedelta(hours=1, minutes=3)) == []
    (run,) = runs(db)
    assert launched == [run.id]
    assert (run.state, run.trigger, run.params) == ("queued", "schedule", {"rows": 5})
    assert run.scheduled_for == T0 + timedelta(hours=1)


def test_after_downtime_skip_runs_once_and_catch_up_runs_every_tick(db: Database) -> None:
    add_schedule(db, name="skipper", misfire="skip")
    add_schedule(db, name="catcher", misfire="catch_up", max_concurrent=5)
    Scheduler(db, lambda _: None).step(T0 + timedelta(hours=3, minutes=5))
    by_schedule: dict[int | None, list[datetime | None]] = {}
    for run in runs(db):
        by_schedule.setdefault(run.schedule_id, []).append(run.scheduled_for)
    skip, catch = sorted(by_schedule.values(), key=len)
    assert skip == [T0 + timedelta(hours=3)]
    assert catch == [T0 + timedelta(hours=h) for h in (1, 2, 3)]


def test_a_tick_over_the_concurrency_limit_is_recorded_as_skipped(db: Database) -> None:
    add_schedule(db, cron="* * * * *")
    scheduler = Scheduler(db, lambda _: None)
    scheduler.step(T0 + timedelta(minutes=1))
    scheduler.step(T0 + timedelta(minutes=2))
    first, second = runs(db)
    assert first.state == "queued"
    assert second.state == "skipped"
    assert second.reason == "skipped: 1 run(s) of schedule 'hourly' still going (max_concurrent 1)"


def test_racing_schedulers_start_each_tick_once(db: Database) -> None:
    for i in range(5):
        add_schedule(db, name=f"s{i}", cron="* * * * *", misfire="catch_up", max_concurrent=99)
    now = T0 + timedelta(minutes=10)
    barrier = threading.Barrier(3)

    def race() -> None:
        barrier.wait()
        Scheduler(db, lambda _: None).step(now)

    threads = [threading.Thread(target=race) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ticks = [(r.schedule_id, r.scheduled_for) for r in runs(db)]
    assert len(ticks) == 5 * 10
    assert len(set(ticks)) == len(ticks)


def test_racing_runners_claim_a_queued_run_once(db: Database) -> None:
    """Two launches of one queued run (an orphan relaunched while its first runner starts):
    the claim is one conditional update, so on SQLite and PostgreSQL exactly one runner
    gets the run and the others are refused."""
    from funade.api.schemas import RunEventsIn, RunUpdate
    from funade.pipelines import records

    add_schedule(db, cron="* * * * *")
    Scheduler(db, lambda _: None).step(T0 + timedelta(minutes=1, seconds=1))
    [queued] = runs(db)
    assert queued.state == "queued"
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def claim(pid: int) -> None:
        update = RunUpdate(state="running", from_state="queued", runner={"pid": pid})
        barrier.wait()
        try:
            with db.session() as session:
                run = session.get(PipelineRun, queued.id)
                assert run is not None
                records.apply_events(session, run, RunEventsIn(run=update), trust=[])
        except ConflictError as exc:
            outcomes.append(exc.message)
        else:
            outcomes.append(f"claimed by {pid}")

    threads = [threading.Thread(target=claim, args=(pid,)) for pid in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [o for o in outcomes if o.startswith("claimed by")]
    refused = [o for o in outcomes if not o.startswith("claimed by")]
    assert len(claimed) == 1, outcomes
    assert refused == [f"Run {queued.id} is running, not queued: another runner took it first."] * 3
    [after] = runs(db)
    assert (after.state, after.runner) == ("running", {"pid": int(claimed[0].split()[-1])})


def test_paused_schedules_start_nothing_and_resume_from_now(db: Database) -> None:
    schedule_id = add_schedule(db)
    with db.session() as session:
        row = session.get(PipelineSchedule, schedule_id)
        assert row is not None
        service.update_schedule(row, {"paused": True})
    assert Scheduler(db, lambda _: None).step(T0 + timedelta(hours=5)) == []
    with db.session() as session:
        row = session.get(PipelineSchedule, schedule_id)
        assert row is not None
        service.update_schedule(row, {"paused": False})
        resumed_at = row.last_tick
    assert resumed_at is not None
    assert resumed_at > T0 + timedelta(days=1)  # the real clock: nothing missed is run
    assert Scheduler(db, lambda _: None).step(T0 + timedelta(hours=6)) == []


@pytest.mark.parametrize(
    ("field", "options", "message"),
    [
        ("cron", {"cron": "61 * * * *"}, "minute field '61'"),
        ("timezone", {"timezone": "Mars/Olympus"}, "Mars/Olympus"),
        ("misfire", {"misfire": "later"}, "misfire 'later' is not a misfire policy"),
        ("max_concurrent", {"max_concurrent": 0}, "max_concurrent 0 must be"),
        ("name", {"name": "../x"}, "Schedule name '../x' is not allowed"),
    ],
)
def test_bad_schedules_are_refused(
    db: Database, field: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")) as info:
        add_schedule(db, **options)  # type: ignore[arg-type]
    assert info.value.field == field
    with db.read() as session:
        assert session.scalars(select(PipelineSchedule)).all() == []


# Through the API, with runners started on the control plane's machine ------------------------


@pytest.fixture
def plane(
    settings: Settings, database: Database, admin_key: str
) -> Iterator[tuple[Client, Launcher]]:
    """A control plane that starts runners (as `funade up` makes), and an admin client of it."""
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    with serve(app) as url, Client(url=url, api_key=admin_key, settings=settings) as client:
        launcher = Launcher(url, database, settings, Sandbox.from_settings(settings))
        app.state.funade.launcher = launcher
        yield client, launcher
        for process in launcher.processes:
            process.kill()
            process.wait()


def finished(client: Client, run_id: int, timeout: float = 60) -> RunOut:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get_run(run_id)
        if run.state in ("succeeded", "failed", "cancelled"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} is still {run.state}"
        time.sleep(0.2)


def test_schedules_through_the_api(admin: Client, key_for: Callable[..., Client]) -> None:
    body = ScheduleIn(
        name="nightly", source="/x/train.py:training", cron="0 3 * * *", timezone="Asia/Tokyo"
    )
    made = admin.create_schedule(body)
    assert made.next_runs[0].astimezone(UTC).hour == 18  # 03:00 in Tokyo
    assert len(made.next_runs) == 5
    assert [s.name for s in admin.list_schedules()] == ["nightly"]
    with pytest.raises(ConflictError, match="Schedule 'nightly' already exists"):
        admin.create_schedule(body)
    paused = admin.update_schedule("nightly", paused=True)
    assert paused.paused is True
    assert paused.next_runs == []
    assert admin.update_schedule("nightly", paused=False).next_runs
    with pytest.raises(InvalidInputError, match="cron"):
        admin.update_schedule("nightly", cron="every day")
    writer = key_for(["read", "write"])
    with pytest.raises(PermissionDeniedError):
        writer.create_schedule(body.model_copy(update={"name": "other"}))
    assert writer.get_schedule("nightly").cron == "0 3 * * *"
    admin.delete_schedule("nightly")
    assert admin.list_schedules() == []


PIPELINE = """
import funade

@funade.step
def double(x: int) -> int:
    return 2 * x

@funade.step
def fail_if(x: int, limit: int) -> int:
    if x > limit:
        raise ValueError(f"{x} is over {limit}")
    return x

@funade.pipeline
def training(x: int = 2, limit: int = 100) -> None:
    fail_if(double(x), limit)
"""


def test_the_control_plane_starts_resumes_and_schedules_runs(
    plane: tuple[Client, Launcher], public_dir: Path, database: Database
) -> None:
    admin, launcher = plane
    tmp_path = public_dir
    source = tmp_path / "train.py"
    source.write_text(PIPELINE)
    launched = admin.launch_run(LaunchIn(source=f"{source}:training", params={"x": 3}))
    assert launched.state == "queued"
    run = finished(admin, launched.id)
    assert run.state == "succeeded", run.reason
    assert run.trigger == "api"
    assert run.steps[-1].outputs["output"]["value"] == 6

    failing = admin.launch_run(LaunchIn(source=f"{source}:training", params={"limit": 1}))
    run = finished(admin, failing.id)
    assert run.state == "failed"
    source.write_text(PIPELINE.replace("x > limit", "x > limit * 100"))
    admin.resume_run_remote(run.id)
    deadline = time.monotonic() + 60
    while admin.get_run(run.id).attempt < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    run = finished(admin, run.id)
    assert (run.state, run.attempt) == ("succeeded", 2)
    with pytest.raises(ConflictError, match="only failed, cancelled or abandoned runs resume"):
        admin.resume_run_remote(run.id)

    admin.create_schedule(
        ScheduleIn(name="every-minute", source=f"{source}:training", cron="* * * * *")
    )
    with database.session() as session:  # as if it had been made two minutes ago
        row = session.scalars(select(PipelineSchedule)).one()
        row.created_at = datetime.now(UTC) - timedelta(minutes=2)
    (started,) = Scheduler(database, launcher.start).step()
    run = finished(admin, started.run_id)
    assert (run.state, run.trigger) == ("succeeded", "schedule")

    missing = admin.launch_run(LaunchIn(source=f"{tmp_path / 'gone.py'}:training"))
    run = finished(admin, missing.id)
    assert run.state == "failed"
    assert "it could not be started: Pipeline file" in run.reason


def test_launching_needs_a_control_plane_that_starts_runners(
    admin: Client, app_url: str, admin_key: str
) -> None:
    with pytest.raises(ConflictError, match="starts no runners"):
        admin.launch_run(LaunchIn(source="/x/train.py:training"))
    response = httpx.post(
        f"{app_url}/api/v1/projects/default/runs/launch",
        json={"source": "x", "colour": 1},
        headers={"authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 422


def _set_next_at(db: Database, schedule_id: int, next_at: datetime | None, paused: bool) -> None:
    with db.session() as session:
        row = session.get(PipelineSchedule, schedule_id)
        assert row is not None
        row.next_at, row.paused = next_at, paused


def test_the_pause_runs_to_the_earliest_next_tick_within_its_bounds(db: Database) -> None:
    scheduler = Scheduler(db, lambda _: None)
    assert scheduler.pause(T0, 1.0, 5.0) == 5.0, "no schedule: the longest"
    first = add_schedule(db, name="first")
    _set_next_at(db, first, T0 + timedelta(seconds=2.5), paused=False)
    assert scheduler.pause(T0, 1.0, 5.0) == 2.5
    assert scheduler.pause(T0, 1.0, 2.0) == 2.0, "at most the longest"
    assert scheduler.pause(T0 + timedelta(seconds=2), 1.0, 5.0) == 1.0, "at least the shortest"
    assert scheduler.pause(T0 + timedelta(hours=1), 1.0, 5.0) == 1.0, "overdue"
    _set_next_at(db, first, T0 + timedelta(seconds=2.5), paused=True)
    assert scheduler.pause(T0, 1.0, 5.0) == 5.0, "a paused schedule waits for nothing"
    second = add_schedule(db, name="second")
    _set_next_at(db, second, None, paused=False)
    assert scheduler.pause(T0, 1.0, 5.0) == 1.0, "a next tick not worked out yet: soon"


def test_at_rest_the_scheduler_sleeps_and_a_committed_schedule_wakes_it(
    db: Database, tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path / "home", database_url)
    launcher = Launcher("http://127.0.0.1:9", db, settings, Sandbox.from_settings(settings))
    scheduler = Scheduler(db, launcher.start)
    stop = service.start_scheduler(
        db, launcher, interval=0.05, idle_interval=30.0, scheduler=scheduler
    )
    try:
        deadline = time.monotonic() + 10
        while scheduler.passes < 1:
            assert time.monotonic() < deadline, "no first pass"
            time.sleep(0.01)
        time.sleep(0.5)  # ten passes, were it polling every interval
        at_rest = scheduler.passes
        assert at_rest <= 2, "it polled at rest"
        add_schedule(db, name="woken")  # a commit to the schedules, in this process
        deadline = time.monotonic() + 5
        while scheduler.passes == at_rest:
            assert time.monotonic() < deadline, "the commit did not wake it"
            time.sleep(0.01)
    finally:
        stop()
