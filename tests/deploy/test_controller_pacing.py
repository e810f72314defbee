"""The controller at rest sleeps until something changes: a commit in its own process wakes it
at once, a write by another process is seen by its cheap change check, and a full pass comes at
least every ``idle_interval`` whatever happens. Each test makes the other paths an hour long, so
only the one under test can get the deployment live before its deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.client import Client
from funade.deploy.backends.local import LocalBackend
from funade.deploy.controller import start_controller
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from funade.store import Database, create_database
from tests.deploy.conftest import Plane
from tests.servers import serve
from tests.serving.models import Arithmetic

HOUR = 3600.0


@contextmanager
def plane(settings: Settings, database: Database, admin_key: str, **pacing: Any) -> Iterator[Plane]:
    backend = LocalBackend(
        settings.home / "replicas",
        sandbox=Sandbox.from_settings(settings),
        fetch=ArtifactStore.from_settings(settings).open,
    )
    controller, stop = start_controller(database, backend, grace_seconds=5, **pacing)
    app = create_app(settings, database, ArtifactStore.from_settings(settings), controller=True)
    try:
        with serve(app) as url, Client(url=url, api_key=admin_key, settings=settings) as client:
            yield Plane(url, client, controller, settings.home)
    finally:
        stop()
        for replica in backend.replicas():
            backend.stop(replica.id, grace_seconds=5)
        deadline = time.monotonic() + 20
        while list(backend.root.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        backend.close()


def test_a_change_through_this_process_wakes_the_controller(
    settings: Settings, database: Database, admin_key: str
) -> None:
    with plane(settings, database, admin_key, check_interval=HOUR, idle_interval=HOUR) as p:
        p.log(Arithmetic())
        time.sleep(0.5)  # the first pass is over: the controller is at rest, for an hour
        p.client.create_deployment("calc")
        p.wait_rollout("calc", ("succeeded",), timeout=60)
        p.client.update_deployment("calc", replicas=2)
        p.wait_rollout("calc", ("succeeded",), timeout=60)
        replicas = p.client.get_deployment("calc").replicas
        assert [r.state for r in replicas if r.revision == 2] == ["ready", "ready"]


def test_a_change_by_another_process_is_seen_by_the_change_check(
    settings: Settings, database: Database, admin_key: str
) -> None:
    """Another API over the same store (as another `funade` process or node would be) writes
    the deployment; nothing in the controller's process commits it."""
    other_db = create_database(settings.resolved_database_url)
    other = create_app(settings, other_db, ArtifactStore.from_settings(settings))
    try:
        with (
            plane(settings, database, admin_key, check_interval=0.2, idle_interval=HOUR) as p,
            serve(other) as url,
            Client(url=url, api_key=admin_key, settings=settings) as client,
        ):
            p.log(Arithmetic())
            client.create_deployment("calc")
            p.wait_rollout("calc", ("succeeded",), timeout=60)
    finally:
        other_db.dispose()


def test_a_full_pass_comes_every_idle_interval_whatever_the_check_says(
    settings: Settings, database: Database, admin_key: str
) -> None:
    """The safety net: with no wake and no change check, the periodic full pass still acts."""
    other_db = create_database(settings.resolved_database_url)
    other = create_app(settings, other_db, ArtifactStore.from_settings(settings))
    try:
        with (
            plane(settings, database, admin_key, check_interval=HOUR, idle_interval=1.0) as p,
            serve(other) as url,
            Client(url=url, api_key=admin_key, settings=settings) as client,
        ):
            p.log(Arithmetic())
            client.create_deployment("calc")
            p.wait_rollout("calc", ("succeeded",), timeout=60)
    finally:
        other_db.dispose()
