"""`funade pipeline run|start|compile|step`: a pipeline run here, compiled, or one of its steps
run (`funade runs` is ``funade.cli.runs``; how a run is shown, ``funade.cli.rundisplay``)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from funade.cli.output import JSON_HELP, PROJECT_HELP, client, console
from funade.cli.rundisplay import LiveDisplay, end_run

_end = end_run  # cli/submit.py imports it by this name

app = typer.Typer(help="Training pipelines: run one here.", no_args_is_help=True)


def run(
    target: Annotated[str, typer.Argument(help="The pipeline: train.py:training or pkg.mod:fn.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
    ] = None,
    env: Annotated[
        str | None, typer.Option(help="Environment section of the config file (dev, stg, prd).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step; neither read nor write the cache.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Run every step and write the cache anew.")
    ] = False,
    require_clean: Annotated[
        bool,
        typer.Option(
            "--require-clean", help="Refuse to run from a git tree with uncommitted changes."
        ),
    ] = False,
    logs: Annotated[bool, typer.Option(help="Stream the steps' logs.")] = True,
    project: Annotated[str | None, typer.Option(help=PROJECT_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Run a pipeline here, showing its steps live; exits 1 if the run fails."""
    from funade.pipelines.params import parse_assignments
    from funade.pipelines.runs import run_pipeline

    text = parse_assignments(param or [])
    display = LiveDisplay(logs=logs and not json_out)
    with client(project) as api:
        try:
            result = run_pipeline(
                target,
                text_params=text,
                env=env,
                use_cache=not no_cache,
                refresh_cache=refresh,
                client=api,
                observer=display if not json_out else None,
                require_clean=require_clean,
            )
        finally:
            display.stop()
    end_run(result, json_out=json_out)


def compile_pipeline(
    target: Annotated[str, typer.Argument(help="The pipeline: train.py:training or pkg.mod:fn.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The file to write (pipeline.yaml).")
    ],
    engine: Annotated[
        str, typer.Option("--target", help="The engine to compile for: kfp (KFP v2 / Vertex AI).")
    ] = "kfp",
    env: Annotated[
        str | None, typer.Option(help="Environment section of the config file (dev, stg, prd).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="The runtime image the steps run in (default: funade's, see docs/kfp.md)."
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Switch the engine's caching off for every step.")
    ] = False,
    components: Annotated[
        str,
        typer.Option(
            help="container: each step a container running funade pipeline step; python: a "
            "lightweight Python component (what kfp.local's SubprocessRunner runs)."
        ),
    ] = "container",
) -> None:
    """Compile a pipeline for another engine: KFP v2 IR YAML that KFP and Vertex AI run."""
    from funade.errors import InvalidInputError
    from funade.pipelines.kfpir import DEFAULT_IMAGE, compile_kfp
    from funade.pipelines.loader import load_pipeline

    if engine != "kfp":
        raise InvalidInputError(
            f"--target {engine!r} is not an engine funade compiles for.",
            field="target",
            value=engine,
            fix="Use --target kfp (Kubeflow Pipelines v2 and Vertex AI Pipelines).",
        )
    # No cyclic collections while the pipeline's file imports its libraries and compiles: their
    # passes over the growing heap find next to nothing, and took 0.15 s of the example's 1 s
    # (benchmarks/kfp/RESULTS.md). Reference counting still frees what is not in a cycle.
    collecting = gc.isenabled()
    gc.disable()
    try:
        pipeline = load_pipeline(target)
        text = compile_kfp(
            pipeline,
            target=target,
            env=env,
            image=image or DEFAULT_IMAGE,
            cache=not no_cache,
            components=components,
        )
    finally:
        if collecting:
            gc.enable()
    output.write_text(text)
    console.print(f"wrote {escape(str(output))} ({len(text.splitlines())} lines, KFP v2 IR)")


def step(
    executor_input: Annotated[
        str, typer.Option("--executor-input", help="KFP's executor input ({{$}}), as JSON.")
    ],
    pipeline: Annotated[str, typer.Option(help="The pipeline file: train.py:training.")],
    function: Annotated[str, typer.Option(help="The step's module:qualname.")],
    code_digest: Annotated[str, typer.Option(help="The step's code digest when compiled.")],
    step_id: Annotated[str, typer.Option("--step", help="The step's id in the pipeline.")] = "",
    cache_version: Annotated[
        str, typer.Option(help="The step's cache_version (part of KFP's cache key).")
    ] = "",
    job: Annotated[
        str,
        typer.Option(help="A scheduled run's job name (the engine fills it in at run time)."),
    ] = "",
) -> None:
    """Run one step inside a KFP container (what compiled components run; see docs/kfp.md)."""
    import json
    import os
    import tempfile

    from funade.errors import InvalidInputError
    from funade.pipelines.kfpstep import run_kfp_step
    from funade.pipelines.scheduletoken import TOKENS_ENV
    from funade.pipelines.vertexrefs import SECRET_REFS_ENV

    if os.environ.get(SECRET_REFS_ENV):  # on Vertex AI: Secret Manager references (submit)
        from funade.pipelines.submitvertex import google_session
        from funade.pipelines.vertexrefs import resolve, secret_manager_fetch

        with google_session() as http:
            os.environ.update(resolve(os.environ, secret_manager_fetch(http)))
    if os.environ.get(TOKENS_ENV):  # a scheduled run: wait for the follower to write its token
        os.environ.update(_schedule_token(job))

    try:
        given = json.loads(executor_input)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"--executor-input is not JSON ({exc.msg} at {exc.pos}).",
            field="executor-input",
            value=executor_input[:80],
            fix="Pass KFP's executor input placeholder, '{{$}}'.",
        ) from None
    if job and isinstance(given, dict):  # the job's name is the schedule's input, not the step's
        from funade.pipelines.scheduletoken import JOB_INPUT

        values = (given.get("inputs") or {}).get("parameterValues")
        if isinstance(values, dict):
            values.pop(JOB_INPUT, None)
    with tempfile.TemporaryDirectory(prefix="funade-step-") as work:
        run_kfp_step(
            given,
            pipeline=pipeline,
            function=function,
            code_digest=code_digest,
            work_dir=Path(work),
        )
    console.print(f"step {escape(step_id or function)} done")


def _schedule_token(job: str) -> dict[str, str]:
    """``FUNADE_API_KEY`` and ``FUNADE_RUN_ID`` of a scheduled run's step, once ``funade
    pipeline follow`` has written them into the per-schedule secret."""
    import os

    from funade.pipelines.scheduletoken import TOKENS_ENV, resolve_schedule_token

    if not os.environ[TOKENS_ENV].startswith("gsm:"):
        return resolve_schedule_token(os.environ, job)
    from funade.pipelines.submitvertex import google_session
    from funade.pipelines.vertexrefs import latest_fetch

    with google_session() as http:
        return resolve_schedule_token(os.environ, job, fetch_gsm=latest_fetch(http))


def start(
    run_id: Annotated[int, typer.Argument(help="A queued run's id.")],
    logs: Annotated[bool, typer.Option(help="Stream the steps' logs.")] = True,
) -> None:
    """Run a run the control plane queued (what its scheduler starts for each tick)."""
    from funade.pipelines.runs import start_queued

    display = LiveDisplay(logs=logs)
    with client() as api:
        try:
            result = start_queued(run_id, client=api, observer=display)
        finally:
            display.stop()
    end_run(result, json_out=False)
