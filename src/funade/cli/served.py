"""What a routing change changed, and waiting until the running gateways serve it: `funade
traffic`, `rollout promote`/`abort` and `rollback` end with ``announce``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from funade.cli.output import console

if TYPE_CHECKING:
    from funade.api.schemas import DeploymentOut
    from funade.client import Client


def traffic_summary(deployment: DeploymentOut) -> str:
    traffic = ", ".join(f"rev-{n} {w}%" for n, w in sorted(deployment.traffic.items()))
    return traffic or "no traffic yet"


def changes(before: DeploymentOut, after: DeploymentOut) -> str:
    """What a traffic change changed: 'traffic rev-1 100% → rev-1 90%, rev-2 10%; shadow none
    → rev-2' (a part that stayed the same is said to)."""
    parts = []
    if before.traffic != after.traffic:
        parts.append(f"traffic {traffic_summary(before)} → {traffic_summary(after)}")
    else:
        parts.append(f"traffic unchanged ({traffic_summary(after)})")
    if before.shadow != after.shadow:
        old, new = (f"rev-{s}" if s else "none" for s in (before.shadow, after.shadow))
        parts.append(
            f"shadow {old} → {new}" + (" (a copy of every request)" if after.shadow else "")
        )
    elif after.shadow:
        parts.append(f"shadow unchanged (rev-{after.shadow})")
    return "; ".join(parts)


def wait_for_gateways(api: Client, changed: DeploymentOut, timeout: float) -> bool:
    """Wait until every running gateway serves ``changed``'s routing (its generation or newer,
    with ready replicas for each revision it routes to) and say so; False if ``timeout``
    passed first. With no gateway running, say when one will serve it."""
    routing = changed.routing
    if routing is None:  # an API from before gateways recorded what they serve
        return True
    generation, wanted = routing.generation, set(routing.wanted)
    began = time.monotonic()
    deadline = began + timeout
    with console.status(f"Waiting for the gateways to serve {changed.name}…") as status:
        while True:
            now = api.get_deployment(changed.name).routing or routing
            gateways = now.gateways
            waiting = [
                g
                for g in gateways
                if g.generation is None or g.generation < generation or not wanted <= set(g.ready)
            ]
            if not gateways:
                console.print(
                    "No gateway is running (none reported in the last 30 s): one that starts "
                    f"serves this within {now.reload_seconds:g} s, routing to each revision once "
                    "it has ready replicas."
                )
                return True
            if not waiting:
                took = time.monotonic() - began
                console.print(f"Served by {gateways_text(len(gateways))} after {took:.1f} s.")
                return True
            if time.monotonic() > deadline:
                console.print(
                    f"Not served yet after {timeout:g} s by {len(waiting)} of "
                    f"{gateways_text(len(gateways))}: "
                    + "; ".join(f"{g.gateway} {g.waiting_for or 'is loading it'}" for g in waiting)
                    + ". The change is stored; they serve it once that is done.",
                    style="yellow",
                )
                return False
            status.update(
                f"{changed.name}: {len(gateways) - len(waiting)} of {gateways_text(len(gateways))} "
                f"serve the change; waiting for {waiting[0].gateway} "
                f"({waiting[0].waiting_for or 'loading it'})"
            )
            time.sleep(0.2)


def gateways_text(count: int) -> str:
    return f"{count} gateway" + ("s" if count != 1 else "")


def announce(
    api: Client, before: DeploymentOut, after: DeploymentOut, *, wait: bool, timeout: float
) -> None:
    """Say what changed from ``before`` to ``after``, then wait for the gateways to serve it
    (exit 1 if they did not within ``timeout``), or with ``wait`` off say within how long they
    will."""
    console.print(f"[bold]{after.name}[/]: {changes(before, after)}")
    if not after.controller:
        console.print(
            "No controller runs with this API: replicas of newly routed revisions start "
            "once `funade up` runs over this home."
        )
    if wait and not wait_for_gateways(api, after, timeout):
        raise typer.Exit(1)
    if not wait and after.routing is not None:
        console.print(
            f"Running gateways load it within {after.routing.reload_seconds:g} s, once the "
            "revisions it routes to have ready replicas."
        )
