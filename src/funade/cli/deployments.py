"""`funade deploy`, `deployments …`, `traffic`, `rollout …` and `rollback`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from funade.cli.output import JSON_HELP, PROJECT_HELP, client, console, print_json, table, when
from funade.cli.served import announce, gateways_text, traffic_summary
from funade.durations import parse_seconds
from funade.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from funade.api.schemas import DeploymentOut, RolloutOut, RoutingOut
    from funade.client import Client
    from funade.ready import ReadyCall

app = typer.Typer(help="Live model endpoints: list, show, delete.", no_args_is_help=True)
rollout_app = typer.Typer(help="A deployment's rollout: status, promote, abort.")

FINAL = ("succeeded", "failed", "aborted", "rolled_back")


def parse_duration(text: str, field: str) -> float:
    """'30s', '5m', '1h' or a number of seconds."""
    return parse_seconds(text, field=field, label=f"--{field}")


def parse_steps(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(
            f"--steps {text!r} is not a list of percentages.",
            field="steps",
            value=text,
            fix="Give rising percentages ending at 100, e.g. '10,50,100'.",
        ) from None


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``["OMP_NUM_THREADS=2", "MODE=fast"]`` → {"OMP_NUM_THREADS": "2", "MODE": "fast"}."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip() or name != name.strip():
            raise InvalidInputError(
                f"--env {pair!r} is not KEY=VALUE.",
                field="env",
                value=pair,
                fix="Give a name, '=' and the value, e.g. --env OMP_NUM_THREADS=2.",
            )
        env[name] = value
    return env


def parse_weights(pairs: list[str]) -> dict[int, int]:
    """``rev-3=90 rev-4=10`` (or ``3=90``) → {3: 90, 4: 10}."""
    weights: dict[int, int] = {}
    for pair in pairs:
        name, _, percent = pair.partition("=")
        number = name.strip().removeprefix("rev-").removeprefix("r")
        if not number.isdigit() or not percent.strip().isdigit():
            raise InvalidInputError(
                f"{pair!r} is not a revision weight.",
                field="traffic",
                value=pair,
                fix="Write REVISION=PERCENT, e.g. `funade traffic churn rev-3=90 rev-4=10`.",
            )
        weights[int(number)] = int(percent)
    return weights


def _routing(routing: RoutingOut) -> str:
    """Whether the running gateways serve a deployment's routing, in a line."""
    gateways = routing.gateways
    if not gateways:
        return "Gateways: none running (none reported in the last 30 s)."
    late = [g for g in gateways if not g.serving]
    running = gateways_text(len(gateways))
    if not late:
        return f"Gateways: {running}, all serving routing generation {routing.generation}."
    lacks = "; ".join(f"{g.gateway} {g.waiting_for}" for g in late)
    return f"Gateways: {len(late)} of {running} not serving it yet: {lacks}"


def _print_rollout(rollout: RolloutOut) -> None:
    console.print(
        f"Rollout {rollout.number} of [bold]{rollout.deployment}[/]: {rollout.strategy} to "
        f"revision {rollout.revision} (stable: {rollout.stable_revision or 'none'}) — "
        f"[bold]{rollout.state}[/]"
    )
    if rollout.reason:
        console.print(f"  reason: {rollout.reason}")
    for entry in rollout.history:
        console.print(f"  {entry['at'][11:19]}  {entry['event']}", style="dim")


def wait_for_rollout(api: Client, name: str, timeout: float) -> RolloutOut:
    """Show the rollout's state live until it ends (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    with console.status(f"Rolling out {name}…") as status:
        while True:
            deployment = api.get_deployment(name)
            rollout = deployment.rollout
            assert rollout is not None
            ready = sum(
                1
                for r in deployment.replicas
                if r.revision == rollout.revision and r.state == "ready"
            )
            status.update(
                f"{name}: revision {rollout.revision} {rollout.state}"
                f" ({ready} replica(s) ready; traffic: {traffic_summary(deployment)})"
            )
            if rollout.state in FINAL or time.monotonic() > deadline:
                return rollout
            time.sleep(0.3)


def deploy(
    model: Annotated[str, typer.Argument(help="The registered model to serve.")],
    version: Annotated[
        str | None, typer.Option("--version", "-v", help="A number or alias (default: latest).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Deployment name (default: the model's).")
    ] = None,
    replicas: Annotated[int | None, typer.Option(help="Replica processes.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes per replica.")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Most rows per model call.")] = None,
    max_latency_ms: Annotated[
        float | None, typer.Option(help="How long a batch may wait for more rows (default 0).")
    ] = None,
    timeout_ms: Annotated[
        float | None, typer.Option(help="Per-request timeout in the replica (504 past it).")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest request body a replica takes (413 above).")
    ] = None,
    widen_datatypes: Annotated[
        bool | None,
        typer.Option(
            "--widen-datatypes/--exact-datatypes",
            help="Convert v2 inputs sent with a narrower datatype than the signature's (FP32 "
            "for FP64); exact (the default): a 400 naming both.",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            help="KEY=VALUE in the model server's environment; repeat (replaces the current "
            "revision's environment).",
        ),
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="direct, bluegreen or canary (for a change to a live deployment).")
    ] = "direct",
    steps: Annotated[str | None, typer.Option(help="Canary weights, e.g. '10,50,100'.")] = None,
    pause: Annotated[str | None, typer.Option(help="Time at each canary step, e.g. '30s'.")] = None,
    warm: Annotated[
        str | None, typer.Option(help="Blue/green: keep the old revision running this long.")
    ] = None,
    public: Annotated[
        bool | None, typer.Option("--public/--private", help="Serve without an API key.")
    ] = None,
    allow: Annotated[
        list[str] | None, typer.Option("--allow", help="Allowed client CIDR; repeat for more.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the rollout to end.")] = True,
    timeout: Annotated[str, typer.Option(help="How long to wait.")] = "10m",
    project: Annotated[str | None, typer.Option("--project", "-p", help=PROJECT_HELP)] = None,
    key: Annotated[
        bool | None,
        typer.Option(
            "--key/--no-key",
            help="Once live, make a predict key for this deployment alone and print a ready "
            "curl (default: when printing to a terminal and CI is unset; --key: also when not "
            "a terminal; never when CI is set).",
        ),
    ] = None,
    key_expires: Annotated[
        str, typer.Option(help="How long that key works, e.g. '8h' or '7d'.")
    ] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Deploy a model version: a new deployment, or a new revision of an existing one.

    Once the rollout succeeds, it prints a ready `curl` (v1 and v2, with an example row from
    the model's signature) and a new predict key limited to the deployment, which expires
    (--key-expires) and is revoked with the deployment."""
    target = name or model
    given = {
        "workers": workers,
        "max_batch_size": max_batch_size,
        "max_latency_ms": max_latency_ms,
        "timeout_ms": timeout_ms,
        "max_body_bytes": max_body_bytes,
        "widen_datatypes": widen_datatypes,
        "env": parse_env(env) if env else None,
    }
    runtime = {k: v for k, v in given.items() if v is not None}  # 0 too: the server judges it
    policy: dict[str, Any] = {}
    if public is not None:
        policy["public"] = public
    if allow:
        policy["allow_cidrs"] = allow
    rollout: dict[str, Any] = {"strategy": strategy}
    if steps is not None:
        rollout["steps"] = parse_steps(steps)
    if pause is not None:
        rollout["pause_seconds"] = parse_duration(pause, "pause")
    if warm is not None:
        rollout["warm_seconds"] = parse_duration(warm, "warm")
    wait_seconds = parse_duration(timeout, "timeout")
    key_lifetime = parse_duration(key_expires, "key-expires")
    with client(project) as api:
        try:
            existing = api.get_deployment(target)
        except NotFoundError:
            existing = None
        if existing is None:
            deployment = api.create_deployment(
                model,
                name=target,
                version=version,
                replicas=1 if replicas is None else replicas,
                runtime=runtime,
                policy=policy,
            )
        else:
            current = existing.revisions[-1]
            deployment = api.update_deployment(
                target,
                version=version or "latest",
                replicas=replicas,
                runtime={**current.runtime, **runtime} if runtime else None,
                policy=policy or None,  # merged into the stored policy by the server
                rollout=rollout,
            )
        if not deployment.controller:
            _no_controller(api, target)
            wait = False
        final = wait_for_rollout(api, target, wait_seconds) if wait else deployment.rollout
        deployment = api.get_deployment(target)
        call = None
        if not as_json and final is not None and final.state == "succeeded":
            call = _first_call(api, deployment, key, key_lifetime)
    if as_json:
        print_json(deployment)
        return
    if final is not None:
        _print_rollout(final)
    console.print(f"[bold]{target}[/]: {traffic_summary(deployment)}")
    if call is not None:
        _print_call(call)
    if final is not None and final.state in ("failed", "rolled_back", "aborted"):
        raise typer.Exit(1)


def _no_controller(api: Client, target: str) -> None:
    """Say what happens to a deployment stored through an API without a controller: whether
    a `funade up` over this home (whose controller starts it) holds the controller's lock."""
    from funade.fileutil import lock_holder
    from funade.running import LOCK_NAME

    home = api.settings.home
    pid = lock_holder(home / LOCK_NAME)
    if pid is None:
        console.print(
            f"Stored deployment [bold]{target}[/]; no `funade up` runs over {home}, so nothing "
            "starts until one does (or set FUNADE_URL to a running control plane).",
            soft_wrap=True,
        )
        return
    holder = f"pid {pid}" if pid else f"it holds {home / LOCK_NAME}"
    console.print(
        f"Stored deployment [bold]{target}[/] through an API run in this command: the `funade "
        f"up` over {home} ({holder}) starts "
        "it, but it left no answering note (up.json) to follow the rollout through. Follow it "
        f"with `funade deployments show {target}` after `export FUNADE_URL=<its URL>`.",
        soft_wrap=True,
    )


def _first_call(
    api: Client, deployment: DeploymentOut, key: bool | None, lifetime: float
) -> ReadyCall:
    """The call the live deployment answers, with a new key when one may be printed here: a
    terminal (or --key) and CI unset."""
    import os
    import sys
    from datetime import timedelta

    from funade.ready import ready_call, wait_for_gateway

    why = None
    if key is False:
        why = "No key was made (--no-key)."
    elif os.environ.get("CI"):
        why = "No key was made: CI is set (a key printed into a build log leaks)."
    elif key is None and not sys.stdout.isatty():
        why = "No key was made: the output is not a terminal (--key makes one anyway)."
    call = ready_call(
        api, deployment, make_key=why is None, lifetime=timedelta(seconds=lifetime), why_no_key=why
    )
    if call.key is not None:
        wait_for_gateway(call)
    return call


def _print_call(call: ReadyCall) -> None:
    if call.key is not None:
        console.print(
            f"Predict key [bold]{call.key_id}[/] (predict only, {call.deployment} only, until "
            f"{when(call.expires_at)}; revoked with the deployment). It is shown only now:",
            soft_wrap=True,
        )
        typer.echo(call.key)
    elif call.note:
        console.print(call.note, soft_wrap=True, markup=False)
    console.print(
        f"Call [bold]{call.deployment}[/] ({call.model_version}) by KServe v1, then by the "
        "Open Inference Protocol (v2):"
    )
    for line in call.curls():
        typer.echo(f"  {line}")


@app.command("list")
def list_deployments(
    project: Annotated[str | None, typer.Option("--project", "-p", help=PROJECT_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """The project's deployments, their traffic and rollouts."""
    with client(project) as api:
        rows = api.list_deployments()
    if as_json:
        print_json(rows)
        return
    table(
        "Deployments",
        ["name", "model", "state", "traffic", "replicas ready", "rollout", "updated"],
        [
            [
                d.name,
                d.model,
                d.state,
                traffic_summary(d),
                f"{sum(r.state == 'ready' for r in d.replicas)}/{len(d.replicas)}",
                f"{d.rollout.state} → rev-{d.rollout.revision}" if d.rollout else "",
                when(d.updated_at),
            ]
            for d in rows
        ],
    )


@app.command("show")
def show(
    name: str,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """A deployment's revisions, replicas, traffic and latest rollout."""
    with client() as api:
        deployment = api.get_deployment(name)
    if as_json:
        print_json(deployment)
        return
    console.print(
        f"[bold]{deployment.name}[/] ({deployment.project}) — {deployment.state}; "
        f"traffic: {traffic_summary(deployment)}"
        + (f"; shadow: rev-{deployment.shadow}" if deployment.shadow else "")
    )
    if deployment.routing is not None:
        console.print(_routing(deployment.routing))
    table(
        "Revisions",
        ["revision", "version", "replicas", "status", "created", "why"],
        [
            [
                f"rev-{r.number}",
                f"{r.model}:{r.version}",
                r.replicas,
                r.status.replace("_", " "),
                when(r.created_at),
                str(r.detail.get("reason", "")),
            ]
            for r in deployment.revisions
        ],
    )
    table(
        "Replicas",
        ["id", "revision", "state", "url", "detail"],
        [[r.id, f"rev-{r.revision}", r.state, r.url, r.detail] for r in deployment.replicas],
    )
    if deployment.rollout is not None:
        _print_rollout(deployment.rollout)


@app.command("stats")
def stats(
    name: str,
    last: Annotated[str, typer.Option(help="Span, ending now, e.g. '5m'.")] = "5m",
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Requests, errors and latency per revision, as the gateways measured them."""
    with client() as api:
        figures = api.deployment_stats(name, seconds=parse_duration(last, "last"))
    if as_json:
        print_json(figures)
        return
    table(
        f"{name}, last {last}",
        ["revision", "requests", "req/s", "errors", "error rate", "p50 ms", "p99 ms"],
        [
            [
                f"rev-{r.revision}",
                r.requests,
                f"{r.requests_per_second:.1f}",
                r.errors,
                f"{r.error_rate:.2%}",
                f"≤{r.p50_ms:g}" if r.p50_ms is not None else "",
                f"≤{r.p99_ms:g}" if r.p99_ms is not None else "",
            ]
            for r in figures.revisions
        ],
    )


@app.command("delete")
def delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Stop routing to a deployment; its replicas drain, then it is removed."""
    if not yes:
        typer.confirm(f"Delete deployment {name!r}?", abort=True)
    with client() as api:
        api.delete_deployment(name)
    console.print(f"Deleting [bold]{name}[/]: replicas drain, then it is removed.")


def traffic(
    name: Annotated[str, typer.Argument(help="The deployment.")],
    weights: Annotated[
        list[str] | None, typer.Argument(help="REVISION=PERCENT pairs, e.g. rev-3=90 rev-4=10.")
    ] = None,
    shadow: Annotated[
        int | None, typer.Option(help="Mirror requests to this revision (answers discarded).")
    ] = None,
    no_shadow: Annotated[bool, typer.Option("--no-shadow", help="Stop mirroring.")] = False,
    wait: Annotated[
        bool, typer.Option(help="Wait until the running gateways serve the change.")
    ] = True,
    timeout: Annotated[str, typer.Option(help="How long to wait.")] = "60s",
) -> None:
    """Split a deployment's traffic between verified revisions (weights add up to 100), or
    mirror it to a revision; then wait until the gateways serve the change."""
    wait_seconds = parse_duration(timeout, "timeout")
    with client() as api:
        parsed = parse_weights(weights) if weights else None
        before = api.get_deployment(name)
        after = api.set_traffic(name, parsed, shadow=shadow, clear_shadow=no_shadow)
        announce(api, before, after, wait=wait, timeout=wait_seconds)


@rollout_app.command("status")
def rollout_status(
    name: str,
    history: Annotated[int, typer.Option(help="How many past rollouts to show.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """The deployment's latest rollout(s), with their history."""
    with client() as api:
        rows = api.list_rollouts(name, limit=history)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"{name} has no rollouts.")
    for row in rows:
        _print_rollout(row)


WAIT_HELP = "Wait until the running gateways serve the change."
TIMEOUT_HELP = "How long to wait for the gateways."


@rollout_app.command("promote")
def rollout_promote(
    name: str,
    wait: Annotated[bool, typer.Option(help=WAIT_HELP)] = True,
    timeout: Annotated[str, typer.Option(help=TIMEOUT_HELP)] = "60s",
) -> None:
    """Send all traffic to the canary now; then wait until the gateways serve it."""
    with client() as api:
        before = api.get_deployment(name)
        _print_rollout(api.rollout_action(name, "promote"))
        after = api.get_deployment(name)
        announce(api, before, after, wait=wait, timeout=parse_duration(timeout, "timeout"))


@rollout_app.command("abort")
def rollout_abort(
    name: str,
    wait: Annotated[bool, typer.Option(help=WAIT_HELP)] = True,
    timeout: Annotated[str, typer.Option(help=TIMEOUT_HELP)] = "60s",
) -> None:
    """Stop the rollout; all traffic goes back to the stable revision (then wait until the
    gateways serve that)."""
    with client() as api:
        before = api.get_deployment(name)
        _print_rollout(api.rollout_action(name, "abort"))
        after = api.get_deployment(name)
        announce(api, before, after, wait=wait, timeout=parse_duration(timeout, "timeout"))


def rollback(
    name: str,
    wait: Annotated[
        bool, typer.Option(help="Wait for the rollback to end and the gateways to serve it.")
    ] = True,
    timeout: Annotated[str, typer.Option(help=TIMEOUT_HELP)] = "60s",
) -> None:
    """Back to the revision that served before the last rollout (instant while it is warm)."""
    with client() as api:
        before = api.get_deployment(name)
        rollout = api.rollback(name)
        if wait:
            rollout = wait_for_rollout(api, name, 600)
        _print_rollout(rollout)
        if rollout.state != "succeeded":
            raise typer.Exit(1)
        after = api.get_deployment(name)
        announce(api, before, after, wait=wait, timeout=parse_duration(timeout, "timeout"))
