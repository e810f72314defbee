"""`funade pipeline submit`: run or schedule a pipeline on Vertex AI Pipelines or Kubeflow;
`funade pipeline follow`: record and follow the runs of such a schedule."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from funade.cli.output import client, console

if TYPE_CHECKING:
    from funade.client import Client
    from funade.pipelines.schemas import RunOut
    from funade.pipelines.submit import ListedJob, RemoteState
    from funade.pipelines.submitkfp import KubeflowEngine
    from funade.pipelines.submitrun import Engine, Submitted
    from funade.pipelines.submitvertex import VertexEngine

TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # noqa: S105 - a variable's name
"""A file holding a bearer token for the KFP API (as the kfp SDK reads it)."""


Project = Annotated[
    str | None, typer.Option(help="Vertex AI: the Google Cloud project (id or number).")
]
Region = Annotated[str | None, typer.Option(help="Vertex AI: the region.")]
ApiEndpoint = Annotated[
    str | None,
    typer.Option(help="Vertex AI: another API endpoint (default https://REGION-aiplatform…)."),
]
Host = Annotated[str | None, typer.Option(help="Kubeflow: the KFP API's URL.")]
Env = Annotated[
    str | None, typer.Option(help="Environment section of the config file (dev, stg, prd).")
]
Interval = Annotated[float, typer.Option(help="Seconds between polls of the engine.")]
EngineName = Annotated[str, typer.Option("--target", help="Where it runs: vertex or kubeflow.")]
Target = Annotated[str, typer.Argument(help="The pipeline: train.py:training or pkg.mod:fn.")]


def _engine(
    engine: str,
    *,
    project: str | None,
    region: str | None,
    api_endpoint: str | None,
    host: str | None,
    experiment: str = "Default",
    namespace: str = "kubeflow",
    dry_run: bool = False,
) -> VertexEngine | KubeflowEngine:
    import httpx

    from funade.errors import InvalidInputError
    from funade.pipelines import submit as checks

    if engine == "vertex":
        if not project or not region:
            missing = "--project" if not project else "--region"
            raise InvalidInputError(
                f"--target vertex needs {missing}.",
                field=missing.lstrip("-"),
                fix="Give --project (the Google Cloud project) and --region (e.g. us-central1).",
            )
        from funade.pipelines.submitvertex import VertexEngine, google_session

        return VertexEngine(
            checks.check_vertex_project(project),
            checks.check_region(region),
            http=httpx.Client() if dry_run else google_session(),
            endpoint=checks.check_host(api_endpoint, "api-endpoint", "Vertex AI API")
            if api_endpoint
            else None,
        )
    if engine == "kubeflow":
        if not host:
            raise InvalidInputError(
                "--target kubeflow needs --host, the Kubeflow Pipelines API's URL.",
                field="host",
                fix="Give --host https://kfp.example.com (or http://localhost:8080).",
            )
        from funade.pipelines.submitkfp import KubeflowEngine, kfp_session

        token_path = os.environ.get(TOKEN_PATH_ENV)
        token = None
        if token_path and not dry_run:
            try:
                token = Path(token_path).read_text().strip()
            except OSError as exc:
                raise InvalidInputError(
                    f"${TOKEN_PATH_ENV} names {token_path!r}, which cannot be read: "
                    f"{exc.strerror}.",
                    field=TOKEN_PATH_ENV,
                    value=token_path,
                    fix="Point it at the file holding the KFP API's bearer token, or unset it.",
                ) from None
        return KubeflowEngine(
            checks.check_host(host),
            http=kfp_session(token),
            experiment=experiment,
            namespace=checks.check_k8s_name(namespace, "namespace"),
            kubeconfig=os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser()),
        )
    raise InvalidInputError(
        f"--target {engine!r} is not an engine funade submits to.",
        field="target",
        value=engine,
        fix="Use --target vertex (Vertex AI Pipelines) or --target kubeflow.",
    )


def submit(
    target: Target,
    engine: EngineName,
    project: Project = None,
    region: Region = None,
    api_endpoint: ApiEndpoint = None,
    host: Host = None,
    experiment: Annotated[str, typer.Option(help="Kubeflow: the experiment.")] = "Default",
    namespace: Annotated[
        str, typer.Option(help="Kubeflow: the namespace the run's pods (and token) are in.")
    ] = "kubeflow",
    env: Env = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="The runtime image the steps run in (docs/kfp.md).")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(help="A cron expression (UTC): create a schedule instead.")
    ] = None,
    pipeline_root: Annotated[
        str | None, typer.Option(help="Where the engine writes artifacts (gs://…, s3://…).")
    ] = None,
    service_account: Annotated[
        str | None, typer.Option(help="The service account the job runs as.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Switch the engine's caching off for every step.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Run every step (KFP caching off; see docs/kfp.md).")
    ] = False,
    funade_url: Annotated[
        str | None,
        typer.Option(help="Where the steps reach funade (default: the API this CLI uses)."),
    ] = None,
    step_token: Annotated[
        bool,
        typer.Option(
            help="Give the steps the run's token, by reference (off: Vertex AI's cache can "
            "reuse steps across runs; see docs/kfp.md)."
        ),
    ] = True,
    token_wait: Annotated[
        float | None,
        typer.Option(
            help="With --schedule: seconds a step waits for `funade pipeline follow` to give "
            "it its run's token (default 600)."
        ),
    ] = None,
    interval: Interval = 10.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the requests; send nothing, record nothing.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Run (or schedule) a pipeline on Vertex AI Pipelines or Kubeflow Pipelines, with a funade
    run that follows the job; exits 1 if the job does not succeed."""
    from funade.pipelines.kfpir import DEFAULT_IMAGE
    from funade.pipelines.params import parse_assignments
    from funade.pipelines.submit import (
        check_host,
        check_pipeline_root,
        check_schedule,
        check_service_account,
        shown,
    )
    from funade.pipelines.submitrun import SubmitOptions
    from funade.pipelines.submitrun import dry_run as plan
    from funade.pipelines.submitrun import submit as send

    remote = _engine(
        engine,
        project=project,
        region=region,
        api_endpoint=api_endpoint,
        host=host,
        experiment=experiment,
        namespace=namespace,
        dry_run=dry_run,
    )
    _check_interval(interval)
    options = SubmitOptions(
        env=env,
        text_params=parse_assignments(param or []),
        image=image or DEFAULT_IMAGE,
        use_cache=not no_cache,
        refresh_cache=refresh,
        pipeline_root=check_pipeline_root(pipeline_root, engine) if pipeline_root else None,
        service_account=check_service_account(service_account, engine) if service_account else None,
        schedule=check_schedule(schedule) if schedule else None,
        funade_url=check_host(funade_url, "funade-url", "funade API") if funade_url else "",
        step_token=step_token,
        token_wait=_check_wait(token_wait),
    )
    if dry_run:
        from funade.settings import Settings

        address = funade_url or Settings().url or "<the URL of the funade API you use>"
        typer.echo(shown(plan(remote, target, replace(options, funade_url=address))))
        return
    with client() as api:
        if not funade_url and not api.is_local:
            options = replace(options, funade_url=api.url)
        done = send(remote, target, options, api)
        if done.run is None:
            where = (
                f"--project {project} --region {region}" if engine == "vertex" else f"--host {host}"
            ) + (f" --api-endpoint {api_endpoint}" if api_endpoint else "")
            console.print(
                f"Schedule {escape(done.job)} created on {engine}: {escape(done.console)}\n"
                "  Record and follow its runs in funade with:\n"
                f"  funade pipeline follow {escape(target)} {escape(done.job)} --target {engine} "
                f"{escape(where)}"
                + (f" --namespace {escape(namespace)}" if namespace != "kubeflow" else "")
                + (f" --env {escape(env)}" if env else ""),
                soft_wrap=True,
            )
            _remember(api, engine, done.job, console=done.console, cron=schedule or "",
                      pipeline=done.spec.name, source=target)  # fmt: skip
            return
        console.print(
            f"Run {done.run.id} submitted to {engine} as {escape(done.job)}\n"
            f"  {escape(done.console)}"
        )
        _follow(api, done, remote, interval=interval, json_out=json_out, forget=step_token)


def _check_interval(interval: float) -> None:
    from funade.errors import InvalidInputError

    if interval < 1 or interval > 30:
        raise InvalidInputError(
            f"--interval {interval} is out of range.",
            field="interval",
            value=interval,
            fix="Poll every 1 to 30 seconds (a run not reported for 60 s is lost).",
        )


def _check_wait(seconds: float | None) -> float | None:
    from funade.errors import InvalidInputError

    if seconds is not None and not 0 <= seconds <= 86400:
        raise InvalidInputError(
            f"--token-wait {seconds} is out of range.",
            field="token-wait",
            value=seconds,
            fix="Give the seconds a scheduled step waits for its token, 0 to 86400 (e.g. 600).",
        )
    return seconds


def follow(
    target: Target,
    schedule: Annotated[
        str,
        typer.Argument(
            help="The schedule: Vertex's projects/P/locations/R/schedules/ID (or ID), KFP's "
            "recurring run id; as `funade pipeline submit --schedule` printed it."
        ),
    ],
    engine: EngineName,
    project: Project = None,
    region: Region = None,
    api_endpoint: ApiEndpoint = None,
    host: Host = None,
    namespace: Annotated[
        str, typer.Option(help="Kubeflow: the namespace of the schedule's Secret (its pods').")
    ] = "kubeflow",
    env: Env = None,
    interval: Interval = 10.0,
) -> None:
    """Record each run a schedule on Vertex AI or Kubeflow starts as a funade run, and follow
    it as `submit` follows its run; until the schedule is gone. Exits 1 if the engine could not
    be reached."""
    from funade.pipelines.submitschedule import follow_schedule

    _check_interval(interval)
    remote = _engine(
        engine,
        project=project,
        region=region,
        api_endpoint=api_endpoint,
        host=host,
        namespace=namespace,
    )

    def recorded(run: RunOut, job: ListedJob) -> None:
        console.print(
            f"Run {run.id} follows {remote.name} job {escape(job.name)} ({job.state.engine_state})",
            soft_wrap=True,
        )
        name = str(run.runner.get("schedule") or schedule)
        _remember(api, engine, name, pipeline=run.pipeline, last_job=job.name)

    def ended(run: RunOut) -> None:
        console.print(
            f"Run {run.id} {run.state}" + (f": {escape(run.reason)}" if run.reason else "")
        )

    with client() as api:
        try:
            done = follow_schedule(
                remote,
                target,
                schedule,
                api,
                env=env,
                interval=interval,
                on_record=recorded,
                on_end=ended,
            )
        except KeyboardInterrupt:
            console.print(
                "Stopped following the schedule; runs it was following are marked lost in 60 s "
                "(their jobs go on), and the next `funade pipeline follow` records only new jobs."
            )
            raise typer.Exit(130) from None
        if not done.lost:
            _remember(api, engine, done.schedule, pipeline=done.pipeline, ended=True,
                      reason=done.reason)  # fmt: skip
    console.print(f"Stopped: {escape(done.reason)}; {len(done.runs)} run(s) followed.")
    if done.lost:
        raise typer.Exit(1)


def _remember(api: Client, engine: str, engine_id: str, **fields: object) -> None:
    """Record (or update) funade's record of a remote schedule; a failure is only said: the
    schedule is on the engine, and following it goes on."""
    from funade.errors import FunadeError
    from funade.pipelines.schemas import RemoteScheduleIn

    try:
        api.record_remote_schedule(
            RemoteScheduleIn.model_validate({"target": engine, "engine_id": engine_id, **fields})
        )
    except (FunadeError, ValueError) as exc:
        console.print(f"  (funade's record of schedule {escape(engine_id)} not updated: "
                      f"{escape(str(exc))})", style="yellow")  # fmt: skip


def schedules(
    project: Annotated[str | None, typer.Option(help="Project to work in.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Schedules made on Vertex AI and Kubeflow with `funade pipeline submit --schedule` (the
    engines run them; `funade schedule list` lists the control plane's own)."""
    from funade.cli.output import print_json, table, when

    with client(project) as api:
        rows = api.list_remote_schedules()
    if json_out:
        print_json(rows)
        return
    table(
        None,
        ("target", "schedule", "cron", "pipeline", "last job", "last seen", "ended"),
        [
            (
                r.target,
                r.engine_id,
                r.cron,
                r.pipeline,
                r.last_job,
                when(r.last_seen_at),
                when(r.ended_at),
            )
            for r in rows
        ],
    )


def _follow(
    api: Client, done: Submitted, remote: Engine, *, interval: float, json_out: bool, forget: bool
) -> None:
    from funade.cli.pipelines import _end
    from funade.pipelines.submitfollow import follow

    assert done.run is not None

    def changed(state: RemoteState) -> None:
        if not json_out:
            console.print(f"  {remote.name}: {state.engine_state}", markup=False)

    reporter = api.with_key(done.token)
    try:
        result = follow(
            reporter,
            done.run,
            done.spec,
            remote,
            done.job,
            interval=interval,
            on_change=changed,
            forget_token=forget,
        )
    except KeyboardInterrupt:
        console.print(
            f"Stopped following run {done.run.id}; the job goes on on {remote.name} "
            f"({escape(done.console)}), and funade marks the run lost in 60 s.",
        )
        raise typer.Exit(130) from None
    finally:
        reporter.close()
    _end(result, json_out=json_out)
