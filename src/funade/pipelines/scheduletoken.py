"""Run tokens for the steps of a scheduled remote run: a per-schedule secret the follower fills.

A schedule's job template is fixed before any of its runs exists, so it cannot name a run's
token. ``funade pipeline submit --schedule`` instead creates one **per-schedule secret**
(``funade-schedule-<key>``: a Kubernetes Secret in the KFP namespace, or a Secret Manager
secret on Vertex AI) and compiles into every step

- ``FUNADE_SCHEDULE_SECRET``: the secret's name (how ``funade pipeline follow`` finds it);
- ``FUNADE_SCHEDULE_TOKENS``: where the step reads it, ``file:<dir>`` (the Secret mounted as a
  volume, which the kubelet updates in place) or ``gsm:projects/P/secrets/S/versions/latest``
  (read again on every look);
- the engine's name of the job, at run time: the step's ``funade_job`` input, a runtime value
  KFP fills from ``{{$.pipeline_job_uuid}}`` (KFP: the run id) or ``{{$.pipeline_job_name}}``
  (Vertex AI: the job's id), as ``kfp.compiler`` writes an argument given
  ``dsl.PIPELINE_JOB_ID_PLACEHOLDER`` / ``PIPELINE_JOB_NAME_PLACEHOLDER``.

The follower, when it records a job of the schedule as a funade run, writes the run's id and
token under the job's key (:func:`job_key`); when the run ends it removes the entry (the token
itself is revoked by funade then). A step waits for its own job's entry (:func:`wait_for_token`,
up to ``FUNADE_TOKEN_WAIT`` seconds, 600 by default) and fails naming the schedule, the job and
the fix if none comes.

Shapes: on Kubernetes one key per job (``<job key>`` → ``{"run": id, "token": ...}`` as JSON)
and ``schedule`` → the schedule's name; on Secret Manager one JSON object per version,
``{"schedule": name, "jobs": {<job key>: {"run": id, "token": ...}}}``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from funade.errors import AuthenticationError, FunadeError, InvalidInputError

__all__ = [
    "JOB_INPUT",
    "JOB_PLACEHOLDERS",
    "MOUNT",
    "SECRET_ENV",
    "TOKENS_ENV",
    "WAIT_ENV",
    "Entries",
    "entry_text",
    "job_key",
    "new_secret_name",
    "read_gsm",
    "read_mounted",
    "resolve_schedule_token",
    "wait_for_token",
]

SECRET_ENV = "FUNADE_SCHEDULE_SECRET"  # noqa: S105 - a variable's name
TOKENS_ENV = "FUNADE_SCHEDULE_TOKENS"
WAIT_ENV = "FUNADE_TOKEN_WAIT"
DEFAULT_WAIT = 600.0
JOB_INPUT = "funade_job"
"""The component input that carries the engine's name of the job (a runtime value)."""
MOUNT = "/var/run/funade/schedule"
"""Where a Kubeflow step's container has the per-schedule Secret mounted."""
JOB_PLACEHOLDERS = {"kubeflow": "{{$.pipeline_job_uuid}}", "vertex": "{{$.pipeline_job_name}}"}
"""What KFP's backend and Vertex AI replace with the job's name as the follower lists it: KFP's
run id (its ``pipeline_job_name`` is the run's display name, which repeats), Vertex's job id."""
SCHEDULE_KEY = "schedule"

_KEY = re.compile(r"[A-Za-z0-9][-._A-Za-z0-9]{0,252}")
_SECRET = re.compile(r"funade-schedule-[0-9a-f]{12}")
_VERTEX_JOB = re.compile(r"projects/[a-z0-9-]{1,30}/locations/[a-z0-9-]{1,40}/pipelineJobs/([^/]+)")

Entries = dict[str, dict[str, Any]]
"""Job key → ``{"run": id, "token": ...}``."""


def new_secret_name() -> str:
    """A fresh per-schedule secret's name (the schedule's own name is not known before it is
    made, and the secret must be named in what makes it)."""
    return f"funade-schedule-{secrets.token_hex(6)}"


def check_secret_name(name: str) -> str:
    if _SECRET.fullmatch(name):
        return name
    raise InvalidInputError(
        f"{name!r} is not the name of a funade per-schedule secret.",
        field=SECRET_ENV,
        value=name,
        fix="Make the schedule with `funade pipeline submit --schedule`.",
    )


def job_key(job: str) -> str:
    """The key of ``job``'s entry: the last part of the engine's name for it (a Vertex job's
    id, a KFP run's id), a valid Kubernetes Secret key."""
    vertex = _VERTEX_JOB.fullmatch(job)
    key = vertex[1] if vertex else job
    if _KEY.fullmatch(key) and key != SCHEDULE_KEY:
        return key
    raise InvalidInputError(
        f"{job!r} is not the name of a job of a schedule.",
        field="job",
        value=job,
        fix="Run the step as the compiled pipeline runs it (--job is the engine's job name).",
    )


def entry_text(run_id: int, token: str) -> str:
    return json.dumps({"run": run_id, "token": token}, sort_keys=True)


def _entry(value: Any, where: str) -> tuple[int, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    run, token = (value.get("run"), value.get("token")) if isinstance(value, dict) else (0, 0)
    if isinstance(run, int) and not isinstance(run, bool) and isinstance(token, str) and token:
        return run, token
    raise InvalidInputError(
        f"The entry for {where} in the schedule's secret is not a run's id and token.",
        field=TOKENS_ENV,
        value=where,
        fix="Leave the per-schedule secret to `funade pipeline follow`, which writes it.",
    )


Read = Callable[[], tuple[tuple[int, str] | None, str]]
"""One look at the store: the job's (run id, token) if there, and the schedule's name if
the follower wrote it ("" if not)."""


def read_mounted(folder: Path, job: str) -> Read:
    """Look in the mounted Secret: only the job's own file and ``schedule``."""
    key = job_key(job)

    def read() -> tuple[tuple[int, str] | None, str]:
        try:
            schedule = (folder / SCHEDULE_KEY).read_text().strip()
        except OSError:
            schedule = ""
        try:
            text = (folder / key).read_text()
        except OSError:
            return None, schedule
        return _entry(text, f"job {job}"), schedule

    return read


def read_gsm(fetch: Callable[[], Mapping[str, Any] | None], job: str) -> Read:
    """Look in the latest version of the Secret Manager secret (``fetch``: its JSON object,
    None while it has no version)."""
    key = job_key(job)

    def read() -> tuple[tuple[int, str] | None, str]:
        found = fetch()
        if found is None:
            return None, ""
        schedule = found.get(SCHEDULE_KEY)
        jobs = found.get("jobs")
        entry = jobs.get(key) if isinstance(jobs, dict) else None
        shown = schedule if isinstance(schedule, str) else ""
        return (_entry(entry, f"job {job}") if entry is not None else None), shown

    return read


def wait_for_token(
    read: Read,
    *,
    job: str,
    secret: str,
    pipeline: str,
    engine: str,
    timeout: float = DEFAULT_WAIT,
    interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, str]:
    """The job's run id and token, once the follower has written them; an
    :class:`AuthenticationError` naming the schedule, the job and the fix after ``timeout``."""
    began = clock()
    schedule = ""
    while True:
        try:
            found, schedule = read()
        except FunadeError as exc:
            if isinstance(exc, InvalidInputError):
                raise
            found = None  # the store away for a moment: looked at again
        if found is not None:
            return found
        waited = clock() - began
        if waited >= timeout:
            break
        sleep(min(interval, max(timeout - waited, 0.0)))
    which = f"schedule {schedule}" if schedule else f"the schedule of pipeline {pipeline!r}"
    where = schedule or "SCHEDULE"
    raise AuthenticationError(
        f"Job {job} of {which} got no funade run token in {round(timeout)} s: nothing "
        f"follows the schedule to record its runs (its secret {secret} has no entry for "
        "the job).",
        field=TOKENS_ENV,
        value=job,
        fix=f"Keep `funade pipeline follow FILE:{pipeline} {where} --target {engine} ...` "
        f"running for the schedule (or give the steps longer with {WAIT_ENV}).",
    )


def resolve_schedule_token(
    environ: Mapping[str, str],
    job: str,
    *,
    fetch_gsm: Callable[[str], Mapping[str, Any] | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, str]:
    """The variables a scheduled step gets once its token is there (``FUNADE_API_KEY``,
    ``FUNADE_RUN_ID``), from ``FUNADE_SCHEDULE_TOKENS`` in ``environ`` (``fetch_gsm``: read a
    Secret Manager version's JSON, None while there is none)."""
    where = environ.get(TOKENS_ENV, "")
    secret = check_secret_name(environ.get(SECRET_ENV, ""))
    text = environ.get(WAIT_ENV) or str(DEFAULT_WAIT)
    try:
        timeout = float(text)
    except ValueError:
        timeout = -1.0
    if not 0 <= timeout <= 86400:
        raise InvalidInputError(
            f"{WAIT_ENV} {text!r} is not a number of seconds from 0 to 86400.",
            field=WAIT_ENV,
            value=text,
            fix="Give the seconds a step waits for its run's token, e.g. 600.",
        )
    if where.startswith("file:"):
        read = read_mounted(Path(where.removeprefix("file:")), job)
        engine = "kubeflow"
    elif where.startswith("gsm:") and fetch_gsm is not None:
        name = where.removeprefix("gsm:")
        read = read_gsm(lambda: fetch_gsm(name), job)
        engine = "vertex"
    else:
        raise InvalidInputError(
            f"{TOKENS_ENV} {where!r} is not where a schedule's run tokens are.",
            field=TOKENS_ENV,
            value=where,
            fix="Make the schedule with `funade pipeline submit --schedule`.",
        )
    run_id, token = wait_for_token(
        read,
        job=job,
        secret=secret,
        pipeline=environ.get("FUNADE_PIPELINE", "?"),
        engine=engine,
        timeout=timeout,
        sleep=sleep,
        clock=clock,
    )
    return {"FUNADE_API_KEY": token, "FUNADE_RUN_ID": str(run_id)}
