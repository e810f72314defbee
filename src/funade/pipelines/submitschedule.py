"""Following a schedule on Vertex AI or Kubeflow (``funade pipeline follow``): every run the
engine's schedule starts becomes a funade run, followed as a submitted run is.

The engine keeps the schedule (its cron, paused or not) and starts its jobs; this follower, a
process on a machine with the engine's credentials and a funade key, polls the schedule every
``interval`` seconds and

- records each job of it funade has not recorded (one still going, or one made since the
  follower started) as a funade run: trigger ``schedule``, ``runner`` naming the engine, the
  job and the schedule, the job's parameter values over the pipeline's defaults;
- follows each such run with :class:`~funade.pipelines.submitfollow.RunFollower`, with the
  run's own token (states, steps, the SLO, notifications, ``funade runs cancel``);
- stops when the schedule is gone (deleted, or ended: Vertex ``COMPLETED``) once the runs it
  follows have ended, or when the engine cannot be reached for ``unreachable_after`` seconds
  (its runs are then ``lost``, as a submitted run's are).

If the schedule's steps were given a per-schedule secret (``FUNADE_SCHEDULE_SECRET`` in their
containers, ``scheduletoken``), the follower writes each recorded job's run id and token into it
under the job's key, and removes the entry when the run ends (funade revokes the token then);
its first write also removes what a follower before left, and once the schedule is gone the
secret is deleted.

Before anything is recorded the pipeline file here is checked against the schedule: the same
pipeline, and every step's code digest one the schedule's containers run, so the runs' specs
(and code lineage) are the code that runs. Jobs the schedule ran before are not recorded twice:
the runs of the pipeline funade holds are read first for the jobs they name.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from funade.errors import APIError, FunadeError, InvalidInputError, NotFoundError
from funade.pipelines.kfpir import kfp_name
from funade.pipelines.reporting import RunControl
from funade.pipelines.runs import code_folder, prepare
from funade.pipelines.scheduletoken import SECRET_ENV, check_secret_name, entry_text, job_key
from funade.pipelines.schemas import RunIn, RunOut
from funade.pipelines.spec import PipelineSpec
from funade.pipelines.submit import EngineError, ListedJob, RemoteSchedule
from funade.pipelines.submitfollow import Followed, RunFollower
from funade.pipelines.submitrun import runner_info

log = logging.getLogger("funade.pipelines.follow")

__all__ = [
    "FollowedSchedule",
    "ScheduleControl",
    "ScheduleEngine",
    "check_schedule_runs",
    "follow_schedule",
    "schedule_secret",
]

_DIGEST = re.compile(r"--code-digest[\s\"',=\\]*(sha256:[0-9a-f]{64})")
_KNOWN_PAGES = 5
"""Pages (of 100 runs of the pipeline) read for the jobs funade has recorded already."""


class ScheduleEngine(Followed, Protocol):
    """What following a schedule needs of an engine (``VertexEngine``, ``KubeflowEngine``)."""

    def schedule_path(self, text: str) -> str: ...

    def get_schedule(self, name: str) -> RemoteSchedule: ...

    def list_jobs(self, schedule: RemoteSchedule) -> list[ListedJob]: ...

    def job_params(self, job: str) -> dict[str, Any]: ...

    def job_console(self, job: str) -> str: ...

    def save_entries(
        self, secret: str, schedule: str, entries: Mapping[str, str], dropped: Iterable[str]
    ) -> None: ...

    def delete_schedule_secret(self, secret: str) -> None: ...


class RunPage(Protocol):
    """A page of runs as the client lists them."""

    @property
    def items(self) -> list[RunOut]: ...

    @property
    def next_cursor(self) -> str | None: ...


class ScheduleControl(RunControl, Protocol):
    """The control plane as the schedule's follower reaches it (with the user's key)."""

    def list_runs(
        self, *, pipeline: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> RunPage: ...


@dataclass
class FollowedSchedule:
    """How following a schedule ended."""

    schedule: str
    runs: list[RunOut] = field(default_factory=list)
    """The runs recorded and followed to their end."""
    reason: str = ""
    lost: bool = False
    """The engine could not be reached: the runs it followed are ``lost``."""
    pipeline: str = ""
    secret: str = ""
    """The per-schedule secret the jobs' tokens were written to ("" if the steps get none)."""


def _digests(pipeline_spec: dict[str, Any]) -> set[str]:
    executors = pipeline_spec.get("deploymentSpec", {}).get("executors", {})
    found: set[str] = set()
    for executor in executors.values() if isinstance(executors, dict) else []:
        container = executor.get("container", {}) if isinstance(executor, dict) else {}
        words = [*container.get("command", []), *container.get("args", [])]
        found.update(_DIGEST.findall(" ".join(str(w) for w in words)))
    return found


def schedule_secret(pipeline_spec: dict[str, Any]) -> str:
    """The per-schedule secret the schedule's steps read ("" if they were given none)."""
    executors = pipeline_spec.get("deploymentSpec", {}).get("executors", {})
    for executor in executors.values() if isinstance(executors, dict) else []:
        container = executor.get("container", {}) if isinstance(executor, dict) else {}
        for entry in container.get("env", []) if isinstance(container, dict) else []:
            if isinstance(entry, dict) and entry.get("name") == SECRET_ENV:
                return check_secret_name(str(entry.get("value")))
    return ""


def _key(job: str) -> str:
    """The job's key in the per-schedule secret; "" for a name that cannot be one (the job's
    steps then wait in vain and fail naming the job)."""
    try:
        return job_key(job)
    except InvalidInputError:
        return ""


def check_schedule_runs(spec: PipelineSpec, remote: RemoteSchedule) -> None:
    """Raise unless ``remote`` runs this pipeline with the code of its steps here."""
    name = remote.pipeline_spec.get("pipelineInfo", {}).get("name")
    if name != kfp_name(spec.name):
        raise InvalidInputError(
            f"Schedule {remote.name} runs pipeline {name!r}, not {kfp_name(spec.name)!r}.",
            field="schedule",
            value=remote.name,
            fix="Give the pipeline file and name the schedule was made from.",
        )
    theirs = _digests(remote.pipeline_spec)
    for node in spec.nodes:
        if node.code_digest not in theirs:
            raise InvalidInputError(
                f"Step {node.id!r}'s code here ({node.code_digest}) is not the code schedule "
                f"{remote.name} runs, so its runs would be recorded with the wrong code.",
                field="schedule",
                value=remote.name,
                fix="Follow from a checkout of the commit the schedule was made from (the "
                "image's code), with the packages of the image.",
            )


def _recorded_jobs(client: ScheduleControl, pipeline: str, schedule: str) -> set[str]:
    jobs: set[str] = set()
    cursor: str | None = None
    for _ in range(_KNOWN_PAGES):
        page = client.list_runs(pipeline=pipeline, cursor=cursor, limit=100)
        jobs.update(
            str(r.runner.get("job")) for r in page.items if r.runner.get("schedule") == schedule
        )
        cursor = page.next_cursor
        if cursor is None:
            break
    return jobs


def _first_look(engine: ScheduleEngine, name: str) -> RemoteSchedule:
    try:
        return engine.get_schedule(name)
    except EngineError as exc:
        if exc.status == 404:
            raise NotFoundError(
                f"Schedule {name} does not exist on {engine.name}.",
                field="schedule",
                value=name,
                fix="Check the name `funade pipeline submit --schedule` printed, and the "
                "project and region (or host) given.",
            ) from None
        raise


def missing_secret(engine: str, secret: str, schedule: str) -> str:
    """What the follower logs (once) when the per-schedule secret it writes is gone."""
    return (
        f"The per-schedule secret {secret} of schedule {schedule} does not exist on {engine}, "
        "so the schedule's steps get no run token (they wait, then fail); the follower keeps "
        "trying to write it. Fix: create it again, empty, with the same name (Kubeflow: "
        f"`kubectl create secret generic {secret} --namespace NAMESPACE`; Vertex AI: "
        f"`gcloud secrets create {secret} --project PROJECT`), or submit the schedule again "
        "with `funade pipeline submit --schedule`."
    )


def follow_schedule(
    engine: ScheduleEngine,
    target: str,
    schedule: str,
    client: ScheduleControl,
    *,
    env: str | None = None,
    interval: float = 10.0,
    unreachable_after: float = 300.0,
    on_record: Callable[[RunOut, ListedJob], None] | None = None,
    on_end: Callable[[RunOut], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FollowedSchedule:
    """Follow ``schedule`` (its engine's name for it) until it is gone and its runs ended."""
    from funade.registry.lineage import attempt_lineage, code_lineage

    name = engine.schedule_path(schedule)
    pipeline, source, spec, values = prepare(target, env=env)
    remote = _first_look(engine, name)
    check_schedule_runs(spec, remote)
    lineage = attempt_lineage({}, code_lineage(code_folder(pipeline)), 1)
    began = now()
    known = _recorded_jobs(client, spec.name, name)
    waiting: dict[str, ListedJob] = {}
    """Jobs seen that could not be recorded yet (the engine or funade away for a moment)."""
    followers: dict[str, tuple[RunFollower, RunControl]] = {}
    done = FollowedSchedule(name, pipeline=spec.name, secret=schedule_secret(remote.pipeline_spec))
    unreachable_since: float | None = None
    entries: dict[str, str] = {}
    """Job key → its entry (run id and token) in the per-schedule secret."""
    dropped: set[str] = set()
    unsaved = bool(done.secret)  # the first save clears what a follower before left
    warned = False
    """Whether the warning that the per-schedule secret is missing was logged."""

    def save() -> None:
        nonlocal unsaved, warned
        if not unsaved:
            return
        try:
            engine.save_entries(done.secret, name, entries, dropped)
        except EngineError as exc:
            if exc.status == 404 and not warned:  # retried at every poll: said once
                warned = True
                log.warning("%s", missing_secret(engine.name, done.secret, name))
            return  # written at the next poll; the steps wait for it
        unsaved = False
        dropped.clear()

    def record(job: ListedJob) -> None:
        nonlocal unsaved
        try:
            given = engine.job_params(job.name)
            run = client.create_run(
                RunIn(
                    pipeline=spec.name,
                    source=source,
                    env=env,
                    spec=spec.model_dump(),
                    params=values | {k: v for k, v in given.items() if k in values},
                    trigger="schedule",
                    lineage=lineage,
                    runner=runner_info(engine.name, job.name, engine.job_console(job.name))
                    | {"schedule": name},
                )
            )
        except (EngineError, APIError):
            waiting[job.name] = job  # recorded at a later poll, ended or not
            return
        except FunadeError as exc:
            if type(exc) is not FunadeError:  # refused: a key without the write scope, ...
                raise
            waiting[job.name] = job  # funade could not be reached
            return
        waiting.pop(job.name, None)
        known.add(job.name)
        key = _key(job.name) if done.secret else ""
        if key:
            entries[key] = entry_text(run.id, run.token or "")
            unsaved = True
        reporter = client.with_key(run.token or "")
        follower = RunFollower(
            reporter,
            run,
            spec,
            engine,
            job.name,
            unreachable_after=unreachable_after,
            forget_token=False,  # a scheduled run's steps get no token: no secret to delete
            clock=clock,
        )
        followers[job.name] = follower, reporter
        if on_record is not None:
            on_record(run, job)

    def unreachable(exc: EngineError) -> list[ListedJob]:
        nonlocal unreachable_since
        moment = clock()
        if unreachable_since is None:
            unreachable_since = moment
        if moment - unreachable_since >= unreachable_after:
            done.lost = True
            done.reason = (
                f"schedule {name} could not be followed for "
                f"{round(moment - unreachable_since)} s; last: {exc}"
            )
        return []

    def look() -> list[ListedJob]:
        """The schedule's newest jobs; ``done.reason`` set once it is gone (or unreachable)."""
        nonlocal unreachable_since
        try:
            remote = engine.get_schedule(name)
        except EngineError as exc:
            if exc.status != 404:
                return unreachable(exc)
            done.reason = f"schedule {name} no longer exists on {engine.name}"
            return []
        try:
            jobs = engine.list_jobs(remote)
        except EngineError as exc:
            return unreachable(exc)
        unreachable_since = None
        if not remote.active:
            done.reason = f"schedule {name} is {remote.engine_state} on {engine.name}"
        return jobs

    def new(jobs: Iterable[ListedJob]) -> list[ListedJob]:
        fresh = [
            j
            for j in jobs
            if j.name not in known
            and (
                j.state.state == "running"
                or j.name in waiting
                or (j.created_at is not None and j.created_at >= began)
            )
        ]
        return sorted(fresh, key=lambda j: j.created_at or began)  # the oldest first

    try:
        while True:
            found = new(look()) if not done.reason else []
            if done.reason:  # no more listing: what was seen and not recorded is tried again
                found = [j for j in waiting.values() if j.name not in known]
            for job in found:
                record(job)
            save()
            for job_name, (follower, reporter) in list(followers.items()):
                try:
                    ended = follower.tick()
                except FunadeError:
                    ended = None  # the next tick says it again
                if ended is not None:
                    reporter.close()
                    del followers[job_name]
                    key = _key(job_name) if done.secret else ""
                    if key:
                        entries.pop(key, None)
                        dropped.add(key)
                        unsaved = True
                    done.runs.append(ended)
                    if on_end is not None:
                        on_end(ended)
            save()
            if done.reason and not followers:
                if done.secret and not done.lost:
                    with contextlib.suppress(EngineError):
                        engine.delete_schedule_secret(done.secret)
                return done
            sleep(interval)
    finally:
        for _, reporter in followers.values():
            reporter.close()
