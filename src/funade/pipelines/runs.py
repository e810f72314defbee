"""Runs from start to end: check and record a new run, resume one, start a queued one.

Each entry point does every check that can be made before anything runs (``prepare``), records
the run through the API, and hands it to a :class:`~funade.pipelines.runner.Runner`.
"""

from __future__ import annotations

import inspect
import os
import socket
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from funade.errors import ConflictError, FunadeError, InvalidInputError, NotFoundError
from funade.pipelines.config import apply_env, load_env
from funade.pipelines.dsl import Pipeline
from funade.pipelines.engine import Stored
from funade.pipelines.loader import load_pipeline, normalize_target
from funade.pipelines.params import bind_params, check_resume_params
from funade.pipelines.reporting import RunControl
from funade.pipelines.runner import Observer, Runner, utc_now
from funade.pipelines.schemas import RunAttemptIn, RunEventsIn, RunIn, RunOut, RunUpdate
from funade.pipelines.spec import PipelineSpec
from funade.pipelines.zygote import ZygoteProcess

__all__ = ["prepare", "resume_run", "run_pipeline", "start_queued"]


def _runner_info() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started_at": utc_now().isoformat()}


def _control(client: RunControl | None) -> RunControl:
    """``client``, or the SDK's default one. The one import of a package above ``pipelines/``,
    made when a run starts without a client, so that importing ``pipelines/`` never loads the
    client (tests/pipelines/test_layers.py holds the line)."""
    if client is not None:
        return client
    from funade.sdk import default_client

    return default_client()


def prepare(
    pipeline: Pipeline | str,
    *,
    params: Mapping[str, Any] | None = None,
    text_params: Mapping[str, str] | None = None,
    env: str | None = None,
    stored: Mapping[str, Any] | None = None,
) -> tuple[Pipeline, str, PipelineSpec, dict[str, Any]]:
    """Load, compile and configure a pipeline and bind its parameters (``stored``: the values a
    recorded run holds, as JSON): every check that can be made before anything runs."""
    if isinstance(pipeline, str):
        target = normalize_target(pipeline)
        pipeline = load_pipeline(target)
    else:
        target = _target_of(pipeline)
    config = load_env(pipeline, env)
    spec = apply_env(pipeline.compile(source=target), config, env=env)
    values = bind_params(
        pipeline,
        given=params,
        text=text_params,
        env=config.get("params"),
        env_name=env,
        stored=stored,
    )
    return pipeline, target, spec, values


def code_folder(pipeline: Pipeline) -> Path:
    """The folder of the pipeline's file, whose git repository is the run's lineage (the
    current directory if the function has no file)."""
    try:
        file = inspect.getsourcefile(pipeline.fn)
    except TypeError:
        file = None
    return Path(file).resolve().parent if file else Path.cwd()


def _lineage(
    pipeline: Pipeline, previous: Mapping[str, Any], attempt: int, *, require_clean: bool = False
) -> dict[str, Any]:
    """The run's lineage with attempt ``attempt``'s code state (``--require-clean`` refuses a
    dirty tree here, before anything is recorded)."""
    from funade.registry.gitstate import check_clean
    from funade.registry.lineage import attempt_lineage, code_lineage

    folder = code_folder(pipeline)
    current = code_lineage(folder)
    if require_clean:
        check_clean(current["git"], where=f"pipeline {pipeline.name!r}", folder=folder)
    return attempt_lineage(previous, current, attempt)


def _target_of(pipeline: Pipeline) -> str:
    module = sys.modules.get(pipeline.fn.__module__)
    path = getattr(module, "__file__", None)
    name = next((k for k, v in vars(module).items() if v is pipeline), None) if module else None
    if name is None:
        raise InvalidInputError(
            f"pipeline {pipeline.name!r} is not defined at the top level of a module.",
            fix="Define it with @funade.pipeline at module level.",
        )
    if pipeline.fn.__module__ == "__main__" and path:
        return f"{Path(path).resolve()}:{name}"
    return f"{pipeline.fn.__module__}:{name}"


def run_pipeline(
    pipeline: Pipeline | str,
    *,
    params: Mapping[str, Any] | None = None,
    text_params: Mapping[str, str] | None = None,
    env: str | None = None,
    use_cache: bool = True,
    refresh_cache: bool = False,
    client: RunControl | None = None,
    observer: Observer | None = None,
    trigger: str = "manual",
    schedule_id: int | None = None,
    scheduled_for: datetime | None = None,
    on_created: Callable[[RunOut], None] | None = None,
    require_clean: bool = False,
) -> RunOut:
    """Check, record and run a pipeline here, and return the finished run.

    The run records the git state of the repository holding the pipeline's file (commit,
    branch, dirty flag with a digest of the changes, remote); ``require_clean`` refuses to run
    from a tree with uncommitted changes.
    ``use_cache=False`` (``--no-cache``): no step reads or writes the cache.
    ``refresh_cache=True`` (``--refresh``): every step runs, and writes its outputs to the cache.
    """
    from funade.pipelines.records import check_cache_mode

    check_cache_mode(use_cache=use_cache, refresh_cache=refresh_cache)
    pipeline, target, spec, values = prepare(
        pipeline, params=params, text_params=text_params, env=env
    )
    lineage = _lineage(pipeline, {}, 1, require_clean=require_clean)
    client = _control(client)
    zygote = ZygoteProcess(target)  # imports the code while the run is being recorded
    try:
        run = client.create_run(
            RunIn(
                pipeline=spec.name,
                source=target,
                env=env,
                spec=spec.model_dump(),
                params=values,
                trigger=trigger,
                schedule_id=schedule_id,
                scheduled_for=scheduled_for,
                use_cache=use_cache,
                refresh_cache=refresh_cache,
                lineage=lineage,
                runner=_runner_info(),
            )
        )
    except BaseException:
        zygote.close()
        raise
    if on_created is not None:
        on_created(run)
    return _execute(
        client, run, spec, target=target, params=values, observer=observer, zygote=zygote
    )


def _execute(
    client: RunControl,
    run: RunOut,
    spec: PipelineSpec,
    *,
    target: str,
    params: Mapping[str, Any],
    observer: Observer | None,
    zygote: ZygoteProcess | None = None,
    done: Mapping[str, Mapping[str, Stored]] | None = None,
    token: str | None = None,
) -> RunOut:
    """Run ``run`` with its own token (``run.token``, or ``token``), never the starter's key."""
    token = token or run.token
    if not token:
        raise ConflictError(
            f"Run {run.id} came without its token, so it cannot be reported.",
            field="token",
            fix="Upgrade the control plane: runs report with their own token.",
        )
    reporter = client.with_key(token)
    try:
        runner = Runner(
            reporter,
            spec,
            run.model_copy(update={"token": None}),
            target=target,
            params=params,
            observer=observer,
            zygote=zygote,
            done=done,
            token=token,
        )
        return runner.execute()
    finally:
        reporter.close()


def resume_run(
    run_id: int,
    *,
    client: RunControl | None = None,
    observer: Observer | None = None,
    force: bool = False,
    params: Mapping[str, Any] | None = None,
    text_params: Mapping[str, str] | None = None,
) -> RunOut:
    """Run again what did not succeed in run ``run_id`` (and what depends on it), reusing
    every output that did, with the pipeline's code as it is now (the attempt records its git
    state). ``params`` (Python values) and ``text_params`` (``--param`` text) change parameters
    that no step whose outputs are reused has consumed; others are refused."""
    client = _control(client)
    run = client.get_run(run_id, spec=True)
    if run.runner.get("engine") in ("vertex", "kubeflow"):  # funade pipeline submit's
        raise ConflictError(
            f"Run {run_id} ran on {run.runner['engine']} ({run.runner.get('job')}); it cannot "
            "be resumed here.",
            field="run",
            value=run_id,
            fix="Submit the pipeline again with `funade pipeline submit` (the engine's cache "
            "reuses the steps that succeeded).",
        )
    if run.state == "succeeded":
        raise ConflictError(
            f"Run {run_id} succeeded; there is nothing to resume.",
            field="run",
            value=run_id,
            fix="Start a new run with `funade pipeline run`.",
        )
    if run.state == "running" and not force and _alive(run.runner):
        raise ConflictError(
            f"Run {run_id} is still running (pid {run.runner.get('pid')} on "
            f"{run.runner.get('host')}).",
            field="run",
            value=run_id,
            fix=f"Wait for it, or cancel it with `funade runs cancel {run_id}` first "
            "(--force resumes a run whose runner on another host is known to be gone).",
        )
    if not run.source:
        raise NotFoundError(
            f"Run {run_id} does not record where its code is, so it cannot be resumed.",
            field="run",
            value=run_id,
        )
    pipeline, target, spec, values = prepare(
        run.source, stored=run.params, params=params, text_params=text_params, env=run.env
    )
    changed = _changed_params(run, pipeline, values) if params or text_params else {}
    done = _done(run)
    lineage = _lineage(pipeline, run.lineage, run.attempt + 1)
    run = client.start_attempt(
        run_id,
        RunAttemptIn(
            spec=spec.model_dump(),
            runner=_runner_info(),
            lineage=lineage,
            params=values if changed else None,
        ),
    )
    return _execute(client, run, spec, target=target, params=values, done=done, observer=observer)


def _changed_params(
    run: RunOut, pipeline: Pipeline, values: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """The parameters a resume changes (name → (old, new)); refused if a step whose outputs it
    reuses consumed one (``params.check_resume_params``)."""
    config = load_env(pipeline, run.env).get("params")
    recorded = bind_params(pipeline, env=config, env_name=run.env, stored=run.params)
    changes = {k: (recorded.get(k), v) for k, v in values.items() if recorded.get(k) != v}
    if changes and run.spec:
        done = {s.instance: s.node for s in run.steps if s.state in ("succeeded", "cached")}
        check_resume_params(run.id, PipelineSpec.model_validate(run.spec), done, changes)
    return changes


def _done(run: RunOut) -> dict[str, dict[str, Stored]]:
    """The outputs of the steps that succeeded in earlier attempts (a resume reuses them)."""
    return {
        s.instance: {name: Stored.model_validate(o) for name, o in s.outputs.items()}
        for s in run.steps
        if s.state in ("succeeded", "cached")
    }


def start_queued(
    run_id: int, *, client: RunControl | None = None, observer: Observer | None = None
) -> RunOut:
    """Run a run the control plane queued (a schedule's tick, or a start through the API)."""
    client = _control(client)
    run = client.get_run(run_id)
    if run.state != "queued":
        raise ConflictError(
            f"Run {run_id} is {run.state}, not queued; it cannot be started again.",
            field="run",
            value=run_id,
            fix=f"Resume it with `funade runs resume {run_id}` if it did not succeed.",
        )
    try:
        pipeline, target, spec, values = prepare(run.source, stored=run.params, env=run.env)
        lineage = _lineage(pipeline, run.lineage, run.attempt)
    except FunadeError as exc:
        client.report_run(
            run_id,
            RunEventsIn(
                run=RunUpdate(
                    state="failed",
                    reason=f"it could not be started: {exc}",
                    started_at=utc_now(),
                    finished_at=utc_now(),
                    runner=_runner_info(),
                )
            ),
        )
        return client.get_run(run_id)
    client.report_run(  # the claim: refused (409) if another runner started it meanwhile
        run_id,
        RunEventsIn(
            run=RunUpdate(
                state="running",
                from_state="queued",
                spec=spec.model_dump(),  # the run takes the compiled pipeline's name
                lineage=lineage,
                started_at=utc_now(),
                runner=_runner_info(),
            )
        ),
    )
    run = client.get_run(run_id)
    return _execute(
        client,
        run,
        spec,
        target=target,
        params=values,
        observer=observer,
        done=_done(run) if run.attempt > 1 else None,
        token=client.api_key,
    )


def _alive(runner: Mapping[str, Any]) -> bool:
    """Whether the runner a run records still runs (only knowable on its own host)."""
    if runner.get("host") != socket.gethostname():
        return True
    pid = runner.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) runs no more
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
