"""Cron schedules of pipelines, and the scheduler that starts their runs.

Exactly one run per tick, also across restarts and with two control planes on one store: the
scheduler claims a schedule's ticks by moving its ``last_tick`` forward with a compare-and-set
(``UPDATE … WHERE last_tick IS <what it read>``) in the same transaction that records the
runs, so a tick is either claimed with its run or not at all. The control plane never imports
pipeline code: it records a *queued* run and a launcher starts a runner process for it
(``funade pipeline start <run>``) with the run's own token, which reports to the control plane
like any other runner.
"""

from __future__ import annotations

import logging
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from funade.errors import ConflictError, FunadeError, InvalidInputError, NotFoundError
from funade.pipelines import cron, records
from funade.pipelines.states import ACTIVE
from funade.sandbox.env import minimal_env
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from funade.store import Database
from funade.store.schema import ApiKey, PipelineRun, PipelineSchedule, Project

__all__ = ["Launcher", "Scheduler", "create_schedule", "start_scheduler"]

log = logging.getLogger("funade.pipelines.schedules")

MISFIRE = ("skip", "catch_up")


def _now() -> datetime:
    return datetime.now(UTC)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_schedule_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"Schedule name {name!r} is not allowed.",
            field="name",
            value=name,
            fix="Use letters, digits, '_', '.' or '-' (up to 128), starting with a letter or "
            "digit.",
        )
    return name


def check_misfire(value: str) -> str:
    if value not in MISFIRE:
        raise InvalidInputError(
            f"misfire {value!r} is not a misfire policy.",
            field="misfire",
            value=value,
            fix="Use 'skip' (one run for all missed ticks) or 'catch_up' (one run per tick).",
        )
    return value


def check_max_concurrent(value: int) -> int:
    if not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            f"max_concurrent {value!r} must be a whole number of at least 1.",
            field="max_concurrent",
            value=value,
            fix="Use 1 to never overlap runs of this schedule.",
        )
    return value


def find_schedule(session: Session, project: Project, name: str) -> PipelineSchedule:
    row = session.scalar(
        select(PipelineSchedule).where(
            PipelineSchedule.project_id == project.id, PipelineSchedule.name == name
        )
    )
    if row is None:
        raise NotFoundError(
            f"Schedule {name!r} does not exist in project {project.name!r}.",
            field="schedule",
            value=name,
            fix="List schedules with `funade schedule list`.",
        )
    return row


def create_schedule(
    session: Session,
    project: Project,
    *,
    name: str,
    source: str,
    cron_expr: str,
    timezone: str,
    env: str | None,
    params: dict[str, Any],
    misfire: str,
    max_concurrent: int,
    paused: bool,
    created_by: str | None,
) -> PipelineSchedule:
    check_schedule_name(name)
    expr = cron.check_cron(cron_expr)
    cron.check_timezone(timezone)
    existing = session.scalar(
        select(PipelineSchedule.id).where(
            PipelineSchedule.project_id == project.id, PipelineSchedule.name == name
        )
    )
    if existing is not None:
        raise ConflictError(
            f"Schedule {name!r} already exists in project {project.name!r}.",
            field="name",
            value=name,
            fix="Pick another --name, or change it with `funade schedule update`.",
        )
    now = _now()
    row = PipelineSchedule(
        project_id=project.id,
        name=name,
        source=source,
        cron=expr,
        timezone=timezone,
        env=env,
        params=params,
        misfire=check_misfire(misfire),
        max_concurrent=check_max_concurrent(max_concurrent),
        paused=paused,
        created_at=now,
        next_at=cron.next_times(expr, timezone, now, 1)[0],
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def update_schedule(row: PipelineSchedule, changes: dict[str, Any]) -> None:
    """Apply checked changes; moving the cron or zone counts from now (no burst of old ticks)."""
    now = _now()
    if "cron" in changes:
        changes["cron"] = cron.check_cron(changes["cron"])
    if "timezone" in changes:
        cron.check_timezone(changes["timezone"])
    if "misfire" in changes:
        check_misfire(changes["misfire"])
    if "max_concurrent" in changes:
        check_max_concurrent(changes["max_concurrent"])
    resumed = row.paused and changes.get("paused") is False
    for name, value in changes.items():
        setattr(row, name, value)
    if resumed or {"cron", "timezone"} & set(changes):
        # Ticks missed while paused, or under the old timing, are not run later.
        row.last_tick = now
    row.next_at = cron.next_times(row.cron, row.timezone, now, 1)[0]


def next_runs(row: PipelineSchedule, count: int = 5) -> list[datetime]:
    return cron.next_times(row.cron, row.timezone, _now(), count)


def queued_name(source: str) -> str:
    """What a queued run is filed under until its runner compiles the pipeline and reports its
    real name (``@funade.pipeline(name=...)``): the name ``source`` gives it, ``training`` of
    ``train.py:training`` (or the file's stem). Never a schedule's name."""
    _, sep, name = source.rpartition(":")
    if sep and name and "/" not in name and not name.endswith(".py"):
        return name
    return Path(source).stem if source.endswith(".py") else source


@dataclass(frozen=True)
class Started:
    run_id: int
    schedule: str
    tick: datetime


class Scheduler:
    """One pass (:meth:`step`) claims the due ticks of every schedule and records their runs;
    ``launch`` then starts a runner for each queued run."""

    def __init__(self, db: Database, launch: Callable[[int], None]) -> None:
        self.db = db
        self.launch = launch
        self.passes = 0
        """How many passes (``step``) it made."""

    def step(self, now: datetime | None = None) -> list[Started]:
        now = now or _now()
        self.passes += 1
        started: list[Started] = []
        with self.db.read() as session:
            ids = list(
                session.scalars(
                    select(PipelineSchedule.id).where(PipelineSchedule.paused.is_(False))
                )
            )
        for schedule_id in ids:
            started += self._claim(schedule_id, now)
        for item in started:
            try:
                self.launch(item.run_id)
            except Exception:  # one schedule's trouble stops no other
                log.exception("could not start run %s of schedule %s", item.run_id, item.schedule)
        return started

    def pause(self, now: datetime, shortest: float, longest: float) -> float:
        """Seconds from ``now`` to the next pass: to the earliest next tick of the schedules
        that are not paused, at least ``shortest`` (and ``shortest`` when one has no next tick
        worked out yet) and at most ``longest``."""
        with self.db.read() as session:
            unknown, earliest = session.execute(
                select(
                    func.count().filter(PipelineSchedule.next_at.is_(None)),
                    func.min(PipelineSchedule.next_at),
                ).where(PipelineSchedule.paused.is_(False))
            ).one()
        if unknown:
            return shortest
        if earliest is None:
            return longest
        return min(longest, max(shortest, (earliest - now).total_seconds()))

    def _claim(self, schedule_id: int, now: datetime) -> list[Started]:
        with self.db.session() as session:
            row = session.get(PipelineSchedule, schedule_id)
            if row is None or row.paused:
                return []
            due = cron.due_ticks(
                row.cron,
                row.timezone,
                last_tick=row.last_tick,
                created_at=row.created_at,
                now=now,
                misfire=row.misfire,  # type: ignore[arg-type]
            )
            if not due.ticks:
                if row.next_at != due.next_at:
                    row.next_at = due.next_at
                return []
            condition = (
                PipelineSchedule.last_tick.is_(None)
                if row.last_tick is None
                else PipelineSchedule.last_tick == row.last_tick
            )
            claimed = session.execute(
                update(PipelineSchedule)
                .where(PipelineSchedule.id == row.id, condition)
                .values(last_tick=due.ticks[-1], next_at=due.next_at)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return []  # another scheduler took these ticks
            active = (
                session.scalar(
                    select(func.count())
                    .select_from(PipelineRun)
                    .where(PipelineRun.schedule_id == row.id, PipelineRun.state.in_(ACTIVE))
                )
                or 0
            )
            out: list[Started] = []
            for tick in due.ticks:
                run = PipelineRun(
                    project_id=row.project_id,
                    pipeline=queued_name(row.source),
                    source=row.source,
                    env=row.env,
                    spec={},
                    params=row.params,
                    trigger="schedule",
                    schedule_id=row.id,
                    scheduled_for=tick,
                    created_by=row.created_by,
                )
                if active >= row.max_concurrent:
                    run.state = "skipped"
                    run.reason = (
                        f"skipped: {active} run(s) of schedule {row.name!r} still going "
                        f"(max_concurrent {row.max_concurrent})"
                    )
                    run.finished_at = now
                else:
                    run.state = "queued"
                    active += 1
                session.add(run)
                session.flush()
                if run.state == "queued":
                    out.append(Started(run.id, row.name, tick))
            if due.skipped:
                log.info("schedule %s: %d missed tick(s) skipped", row.name, due.skipped)
            return out

    def orphans(self) -> list[int]:
        """Queued runs no runner took (the control plane stopped between claim and launch)."""
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(PipelineRun.id).where(
                        PipelineRun.state == "queued", PipelineRun.trigger != "manual"
                    )
                )
            )


class Launcher:
    """Starts runner processes on this machine for queued runs (a schedule's tick, an API
    launch or resume), talking to the control plane at ``url``. Each gets its run's own token
    (made here, never a key of the control plane's), a minimal environment and, with isolation
    ``users``, its project's own user; its output goes to ``$FUNADE_HOME/runs/<id>/runner.log``.
    """

    def __init__(self, url: str, db: Database, settings: Settings, sandbox: Sandbox) -> None:
        self.url, self.db, self.settings, self.sandbox = url, db, settings, sandbox
        self.processes: list[subprocess.Popen[bytes]] = []
        self._places: dict[int, tuple[int, str]] = {}
        """Each runner's (project id, private directory name), removed once it has exited."""

    def start(self, run_id: int) -> None:
        issued = self._issue(run_id)
        if issued is not None:
            self._spawn(run_id, *issued)

    def _issue(self, run_id: int) -> tuple[str, int, str] | None:
        """The run's token (its project id and name too), made as the key that queued it; None
        (and the run failed, saying why) when that key can no longer start runs."""
        from funade.auth import runtokens
        from funade.auth.service import principal_for

        with self.db.session() as session:
            run = session.get(PipelineRun, run_id)
            if run is None or run.state != "queued":
                return None
            starter = session.get(ApiKey, run.created_by) if run.created_by else None
            problem = _invalid_starter(starter)
            if problem is None:
                assert starter is not None
                try:
                    token = runtokens.issue(
                        session,
                        run_id=run.id,
                        project=run.project,
                        starter=principal_for(starter),
                        permissions=[],
                        hours=self.settings.run_token_hours,
                    )
                except FunadeError as exc:
                    problem = exc.message
                else:
                    return token, run.project_id, run.project.name
            run.state, run.reason = "failed", f"it could not be started: {problem}"
            run.finished_at = _now()
            log.warning("run %s not started: %s", run_id, problem)
            return None

    def _spawn(self, run_id: int, token: str, project_id: int, project: str) -> None:
        self._forget_finished()
        directory = self.settings.home / "runs" / str(run_id)
        directory.mkdir(parents=True, exist_ok=True)
        # A directory of its own for each runner (its home, work and caches), made afresh:
        # nothing an earlier run of the project left (files, a planted module, a changed
        # cached blob) is on this one's path.
        name = f"run-{run_id}-{secrets.token_hex(4)}"
        place = self.sandbox.private_dir(project_id, name)
        env = minimal_env(
            {
                "FUNADE_URL": self.url,
                "FUNADE_API_KEY": token,
                "FUNADE_HOME": str(place / "home"),
                "FUNADE_PROJECT": project,
                "HOME": str(place / "home"),
                "TMPDIR": str(place / "tmp"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        who = self.sandbox.run_as(project_id)
        with (directory / "runner.log").open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "funade", "pipeline", "start", str(run_id)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=place,
                start_new_session=True,  # a control-plane restart does not stop the run
                **(who.popen() if who is not None else {}),
            )
        self.processes.append(process)
        self._places[process.pid] = (project_id, name)

    def _forget_finished(self) -> None:
        """Drop the runners that exited, and their directories."""
        running = []
        for process in self.processes:
            if process.poll() is None:
                running.append(process)
            elif (place := self._places.pop(process.pid, None)) is not None:
                self.sandbox.remove_private(*place)
        self.processes = running


def _invalid_starter(key: ApiKey | None) -> str | None:
    """Why ``key`` (the one that queued a run, or made its schedule) cannot start it now."""
    if key is None:
        return "the key that queued it no longer exists"
    if key.revoked_at is not None:
        return f"key {key.name!r} ({key.id}), which queued it, was revoked"
    if key.expires_at is not None and key.expires_at <= _now():
        return f"key {key.name!r} ({key.id}), which queued it, has expired"
    return None


def start_scheduler(
    db: Database,
    launcher: Launcher,
    *,
    interval: float = 1.0,
    idle_interval: float = 5.0,
    scheduler: Scheduler | None = None,
) -> Callable[[], None]:
    """The scheduler in a daemon thread (``funade up``), which also records as lost the runs
    whose runners stopped reporting; returns a function that stops it.

    A pass comes when the earliest schedule is due (at least ``interval`` after the last) and at
    least every ``idle_interval`` (what another process wrote, and lost runs: they are lost
    after ``records.LOST_AFTER``, a minute); a commit in this process that touches a schedule
    (one made, changed, paused or resumed through the API) brings it at once. It polled every
    ``interval`` before: two queries a second at rest."""
    scheduler = scheduler or Scheduler(db, launcher.start)
    stop = threading.Event()
    wake = threading.Event()
    unwatch = db.on_commit((PipelineSchedule.__tablename__,), wake.set)

    def loop() -> None:
        for run_id in scheduler.orphans():
            launcher.start(run_id)
        while not stop.is_set():
            wake.clear()
            pause = interval
            try:
                scheduler.step()
                with db.session() as session:  # runs whose runners stopped reporting
                    for run_id in records.mark_lost(session):
                        log.warning("run %s is lost: its runner stopped reporting", run_id)
                pause = scheduler.pause(_now(), interval, idle_interval)
            except Exception:
                log.exception("scheduler pass failed")
            wake.wait(pause)

    thread = threading.Thread(target=loop, name="funade-scheduler", daemon=True)
    thread.start()

    def shutdown() -> None:
        unwatch()
        stop.set()
        wake.set()
        thread.join(timeout=10)

    return shutdown
