"""A control plane with a running deployment controller over a temp home, as `funade up` runs
them, and models registered in it (fake models from tests.serving.models)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

import funade
from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.client import Client
from funade.deploy.backends.local import LocalBackend
from funade.deploy.backends.sockets import socket_base
from funade.deploy.controller import Controller, start_controller
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from funade.store import Database
from funade.store.schema import ReplicaRecord
from tests.servers import serve
from tests.serving.models import Arithmetic

SAMPLE = {"x": np.array([[1.0, 2.0], [3.0, 4.0]])}


class Plane:
    """The pieces of one control plane, for tests to drive and inspect."""

    def __init__(self, url: str, client: Client, controller: Controller, home: Path) -> None:
        self.url = url
        self.client = client
        self.controller = controller
        self.home = home

    def log(self, model: object, name: str = "calc", **options: Any) -> int:
        sample = options.pop("sample_input", SAMPLE)
        return funade.log_model(
            model, name, sample_input=sample, client=self.client, progress=False, **options
        ).version

    def replica_token(self, url: str) -> str:
        """What the gateway presents to the replica at ``url``."""
        with self.controller.db.read() as session:
            token = session.scalar(select(ReplicaRecord.token).where(ReplicaRecord.url == url))
        assert token, f"no replica at {url}"
        return token

    def wait_rollout(self, name: str, states: tuple[str, ...], timeout: float = 90) -> Any:
        """Poll until the newest rollout of ``name`` is in one of ``states``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            rollout = self.client.get_deployment(name).rollout
            assert rollout is not None
            if rollout.state in states:
                return rollout
            assert time.monotonic() < deadline, f"rollout stuck in {rollout.state}: {rollout}"
            time.sleep(0.1)


@pytest.fixture
def plane(settings: Settings, database: Database, admin_key: str) -> Iterator[Plane]:
    sockets = socket_base(Path("/tmp"), settings.home)
    backend = LocalBackend(
        settings.home / "replicas",
        sandbox=Sandbox.from_settings(settings),
        fetch=ArtifactStore.from_settings(settings).open,
        sockets=sockets,  # the default transport
    )
    controller, stop = start_controller(database, backend, interval=0.1, grace_seconds=5)
    app = create_app(settings, database, ArtifactStore.from_settings(settings), controller=True)
    try:
        with serve(app) as url, Client(url=url, api_key=admin_key, settings=settings) as client:
            yield Plane(url, client, controller, settings.home)
    finally:
        stop()
        backend.stop_all(grace_seconds=5)
        backend.close()
        shutil.rmtree(sockets, ignore_errors=True)  # under /tmp


@pytest.fixture
def calc(plane: Plane) -> Plane:
    """``calc`` deployed at version 1 (an Arithmetic model), verified and taking traffic."""
    plane.log(Arithmetic())
    plane.client.create_deployment("calc")
    plane.wait_rollout("calc", ("succeeded",))
    return plane


def until(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
