"""Schedules made on the stand-in engines (tests/pipelines/standin.py), as the schedule tests
make them (test_submit_schedule*.py, tests/security/test_kfp_follow.py): the routes a schedule
is created through, the engines over the stand-in, the schedule's jobs once `submit --schedule`
sent it, the same through the CLI, and the script of what happens between the follower's
polls."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.pipelines.submitkfp import KubeflowEngine
from funade.pipelines.submitvertex import VertexEngine
from tests.pipelines.standin import (
    ScheduledJobs,
    SecretStores,
    StandIn,
    standin,
    write_kubeconfig,
)

PROJECT, REGION = "acme-ml", "europe-west4"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
SCHEDULE = f"{PARENT}/schedules/7"
"""The Vertex AI schedule the stand-in makes."""
RECURRING_RUN = "rr-1"
"""The Kubeflow recurring run the stand-in makes."""
CRON = "0 3 * * *"


def kubeflow_schedules(api: StandIn) -> SecretStores:
    """Routes for making a Kubeflow schedule (experiment ``e``, recurring run ``rr-1``), and
    the Kubernetes Secrets its token goes to."""
    api.route("GET", "/apis/v2beta1/experiments", (200, {"experiments": [{"experiment_id": "e"}]}))
    api.route("POST", "/apis/v2beta1/recurringruns", (200, {"recurring_run_id": RECURRING_RUN}))
    return SecretStores(api)


def vertex_schedules(api: StandIn) -> SecretStores:
    """The route for making a Vertex AI schedule (``SCHEDULE``), and the Secret Manager its
    token goes to."""
    api.route("POST", f"/v1/{PARENT}/schedules", (200, {"name": SCHEDULE}))
    return SecretStores(api)


def kubeflow_engine(api: StandIn, http: httpx.Client) -> KubeflowEngine:
    """KFP and Kubernetes both on the stand-in."""
    return KubeflowEngine(api.url, http=http, kube=(api.url, http))


def vertex_engine(api: StandIn, http: httpx.Client) -> VertexEngine:
    """Vertex AI and Secret Manager both on the stand-in."""
    return VertexEngine(PROJECT, REGION, http=http, endpoint=api.url, secrets_endpoint=api.url)


def scheduled_jobs(api: StandIn, engine: str) -> ScheduledJobs:
    """The jobs of the one schedule sent to the stand-in (``kubeflow`` or ``vertex``)."""
    if engine == "kubeflow":
        (sent,) = api.requests("POST", "/apis/v2beta1/recurringruns")
        return ScheduledJobs(api, "kubeflow", RECURRING_RUN, sent.body)
    (sent,) = api.requests("POST", f"/v1/{PARENT}/schedules")
    return ScheduledJobs(api, "vertex", SCHEDULE, sent.body)


@contextmanager
def kubeflow_for_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, app_url: str, admin_key: str
) -> Iterator[tuple[StandIn, SecretStores]]:
    """A stand-in Kubeflow (and Kubernetes, in ``KUBECONFIG``) that schedules, and funade at
    ``app_url``, as the `funade pipeline` commands find them."""
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)
    with standin() as api:
        monkeypatch.setenv("KUBECONFIG", write_kubeconfig(tmp_path / "kubeconfig", api.url))
        yield api, kubeflow_schedules(api)


def submit_schedule_cli(cli: Callable[..., Any], target: str, api: StandIn) -> Any:
    """`funade pipeline submit TARGET --schedule` to the stand-in Kubeflow."""
    return cli("pipeline", "submit", target, "--target", "kubeflow", "--host", api.url,
               "--schedule", CRON)  # fmt: skip


def follow_cli(cli: Callable[..., Any], target: str, api: StandIn) -> Any:
    """`funade pipeline follow TARGET rr-1` on the stand-in Kubeflow, polling each second."""
    return cli("pipeline", "follow", target, RECURRING_RUN, "--target", "kubeflow",
               "--host", api.url, "--interval", "1")  # fmt: skip


class Script:
    """What happens on the engine between the follower's polls: one action per sleep."""

    def __init__(self, *actions: Callable[[], object]) -> None:
        self.actions = iter(actions)

    def __call__(self, _seconds: float) -> None:
        action = next(self.actions, None)
        if action is None:
            raise AssertionError("the follower polled after the script ended")
        action()
