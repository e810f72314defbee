"""Submitting a pipeline: check, compile, record the funade run, store its token in the
engine's secret store, create the job (or schedule); or, with ``dry_run``, only say how.

A run (not a schedule) is recorded before the job is created, so its token exists to be stored
(``funade-run-<id>``) and referenced from the compiled pipeline; the job's name goes into the
run's ``runner`` (``{"engine": "vertex", "job": ...}``) once the engine has it. If the engine
refuses the job, the run ends ``failed`` with the engine's answer and the secret is deleted.

A schedule creates no funade run: the engine starts its runs. Its steps get a per-schedule
secret by reference instead (``funade-schedule-<key>``, made here before the schedule, empty),
into which ``funade pipeline follow`` writes each job's run token when it records the job, and
the job's name at run time (``scheduletoken``); ``--no-step-token`` leaves all of it out.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from funade.errors import FunadeError, InvalidInputError
from funade.pipelines.dsl import Pipeline
from funade.pipelines.kfpir import DEFAULT_IMAGE, SecretsHook
from funade.pipelines.records import check_cache_mode
from funade.pipelines.reporting import RunControl
from funade.pipelines.runs import code_folder, prepare
from funade.pipelines.scheduletoken import JOB_INPUT, JOB_PLACEHOLDERS, WAIT_ENV, new_secret_name
from funade.pipelines.schemas import RunEventsIn, RunIn, RunOut, RunUpdate
from funade.pipelines.spec import PipelineSpec
from funade.pipelines.submit import (
    Request,
    Submission,
    check_schedule,
    compile_submission,
    display_name,
)
from funade.pipelines.submitfollow import Followed

__all__ = ["DRY_RUN_ID", "Engine", "SubmitOptions", "Submitted", "dry_run", "runner_info", "submit"]

DRY_RUN_ID = 0
"""The run id ``--dry-run`` shows (a run's id is made when it is recorded, which it is not)."""


class Engine(Followed, Protocol):
    """An engine to submit to (``VertexEngine``, ``KubeflowEngine``)."""

    def step_secrets(self, run_id: int | str) -> tuple[dict[str, str], SecretsHook | None]: ...

    def token_requests(self, run_id: int | str, token: str | None) -> list[Request]: ...

    def send_token(self, requests: list[Request]) -> None: ...

    def create_requests(self, sub: Submission, *, experiment_id: str = "") -> list[Request]: ...

    def create(self, sub: Submission) -> tuple[str, str]: ...

    def schedule_wiring(self, secret: str) -> tuple[dict[str, str], tuple[str, str] | None]: ...

    def schedule_secret_requests(self, secret: str) -> list[Request]: ...

    def create_schedule_secret(self, secret: str) -> None: ...

    def delete_schedule_secret(self, secret: str) -> None: ...


@dataclass(frozen=True)
class SubmitOptions:
    env: str | None = None
    text_params: Mapping[str, str] = field(default_factory=dict)
    image: str = DEFAULT_IMAGE
    use_cache: bool = True
    refresh_cache: bool = False
    pipeline_root: str | None = None
    service_account: str | None = None
    schedule: str | None = None
    funade_url: str = ""
    """Where the steps reach funade (``FUNADE_URL`` in their containers)."""
    step_token: bool = True
    """Give the steps the run's token (by reference) and its id. Vertex AI's cache key covers
    the container's environment, so on Vertex a step's cached result is reused only by runs
    whose steps got none (``--no-step-token``); KFP's leaves the environment out. A
    schedule's steps get the per-schedule secret and the job's name (an input: no step of
    a scheduled run is then served from another run's cache)."""
    token_wait: float | None = None
    """A schedule's steps: seconds to wait for the follower to write the job's token
    (``FUNADE_TOKEN_WAIT``; None: the step's default, 600)."""


@dataclass(frozen=True)
class Submitted:
    requests: list[Request]
    """What was sent (the run's token redacted)."""
    job: str
    console: str
    run: RunOut | None
    spec: PipelineSpec
    token: str = field(default="", repr=False)
    """The run's token, for following it (never printed)."""


Prepared = tuple[Pipeline, str, PipelineSpec, dict[str, Any]]
"""What ``runs.prepare`` gives: the pipeline, its target, its spec (env applied), its values."""


def _plan(target: str, options: SubmitOptions) -> Prepared:
    check_cache_mode(use_cache=options.use_cache, refresh_cache=options.refresh_cache)
    return prepare(target, text_params=options.text_params, env=options.env)


def _submission(
    engine: Engine,
    prepared: Prepared,
    options: SubmitOptions,
    run_id: int | None,
    project: str = "",
    secret: str = "",
) -> Submission:
    pipeline, target, spec, values = prepared
    shown_id = run_id if run_id is not None else DRY_RUN_ID
    step_env: dict[str, str] = {}
    step_secrets: dict[str, str] = {}
    secrets, hook = engine.step_secrets(shown_id)
    job_input: tuple[str, str] | None = None
    volume: tuple[str, str] | None = None
    if not options.schedule or secret:
        step_env = {
            "FUNADE_URL": options.funade_url,
            "FUNADE_PIPELINE": spec.name,
            **({"FUNADE_PROJECT": project} if project else {}),
        }
    if secret:  # a schedule's steps: the per-schedule secret and the job's name
        wiring, volume = engine.schedule_wiring(secret)
        step_env |= wiring
        if options.token_wait is not None:
            step_env[WAIT_ENV] = f"{options.token_wait:g}"
        job_input = (JOB_INPUT, JOB_PLACEHOLDERS[engine.name])
    elif not options.schedule and options.step_token:
        step_secrets, step_env["FUNADE_RUN_ID"] = secrets, str(shown_id)
    return compile_submission(
        pipeline,
        spec,
        target=target,
        defaults=values,
        given={k: values[k] for k in options.text_params if k in values},
        image=options.image,
        step_env=step_env,
        step_secrets=step_secrets,
        secrets_hook=hook,
        job_input=job_input,
        secret_volume=volume,
        display_name=display_name(spec, run_id),
        cache=options.use_cache and not options.refresh_cache,
        pipeline_root=options.pipeline_root,
        service_account=options.service_account,
        schedule=check_schedule(options.schedule) if options.schedule else None,
    )


def dry_run(engine: Engine, target: str, options: SubmitOptions) -> list[Request]:
    """The requests ``submit`` would send; needs no credentials and records nothing. The
    run's id is 0 and its token is redacted: both are made when the run is recorded."""
    secret = new_secret_name() if options.schedule and options.step_token else ""
    sub = _submission(engine, _plan(target, options), options, None, secret=secret)
    if secret:
        return engine.schedule_secret_requests(secret) + engine.create_requests(sub)
    stored = not options.schedule and options.step_token
    token = engine.token_requests(DRY_RUN_ID, None) if stored else []
    return token + engine.create_requests(sub)


def runner_info(engine: str, job: str = "", console: str = "") -> dict[str, Any]:
    """What a remote run's record says of where it runs and who follows it (``runner``)."""
    return {
        "engine": engine,
        "job": job,
        "console": console,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": datetime.now(UTC).isoformat(),
    }


def submit(engine: Engine, target: str, options: SubmitOptions, client: RunControl) -> Submitted:
    """Record the run, store its token, create the job; or create the schedule."""
    prepared = _plan(target, options)
    if options.schedule and not options.step_token:
        sub = _submission(engine, prepared, options, None)
        job, console = engine.create(sub)
        return Submitted(engine.create_requests(sub), job, console, None, prepared[2])
    if not options.funade_url:
        raise InvalidInputError(
            f"The steps on {engine.name} need funade's address to reach it, and there is none: "
            "this funade runs in-process.",
            field="funade-url",
            fix="Give --funade-url https://funade.example (a control plane the engine's "
            "machines reach), or set FUNADE_URL to one"
            + (
                " (or --no-step-token: the steps then cannot call funade)."
                if options.schedule
                else "."
            ),
        )
    if options.schedule:
        return _schedule(engine, prepared, options, client)
    from funade.registry.lineage import attempt_lineage, code_lineage

    # Every check that compiling and building the requests makes, before a run is recorded.
    engine.create_requests(_submission(engine, prepared, options, None))
    pipeline, source, spec, values = prepared
    run = client.create_run(
        RunIn(
            pipeline=spec.name,
            source=source,
            env=options.env,
            spec=spec.model_dump(),
            params=values,
            use_cache=options.use_cache,
            refresh_cache=options.refresh_cache,
            lineage=attempt_lineage({}, code_lineage(code_folder(pipeline)), 1),
            runner=runner_info(engine.name),
        )
    )
    token = run.token or ""
    reporter = client.with_key(token)
    try:
        try:
            sub = _submission(engine, prepared, options, run.id, run.project)
            requests = engine.create_requests(sub)
            if options.step_token:
                requests = engine.token_requests(run.id, None) + requests
                engine.send_token(engine.token_requests(run.id, token))
            job, console = engine.create(sub)
        except FunadeError as exc:
            reason = f"it could not be submitted to {engine.name}: {exc}"
            now = datetime.now(UTC)
            update = RunUpdate(state="failed", reason=reason, finished_at=now)
            reporter.report_run(run.id, RunEventsIn(run=update))
            with contextlib.suppress(FunadeError):
                engine.forget_token(run.id)
            raise
        update = RunUpdate(runner=runner_info(engine.name, job, console))
        reporter.report_run(run.id, RunEventsIn(run=update))
        run = reporter.get_run(run.id)
    finally:
        reporter.close()
    return Submitted(requests, job, console, run, spec, token=token)


def _schedule(
    engine: Engine, prepared: Prepared, options: SubmitOptions, client: RunControl
) -> Submitted:
    """Create the per-schedule secret, then the schedule (the secret deleted if refused)."""
    secret = new_secret_name()
    project = getattr(client, "project", "")
    project = project if isinstance(project, str) else ""
    sub = _submission(engine, prepared, options, None, project, secret)
    requests = engine.schedule_secret_requests(secret) + engine.create_requests(sub)
    engine.create_schedule_secret(secret)
    try:
        job, console = engine.create(sub)
    except FunadeError:
        with contextlib.suppress(FunadeError):
            engine.delete_schedule_secret(secret)
        raise
    return Submitted(requests, job, console, None, prepared[2])
