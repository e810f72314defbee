"""A replica's detail (why it is in its state: "building image TAG" while a container backend
builds its image) reaches the store's ``replicas.detail``, the API's ``replicas[].detail`` and
`funade deployments show`. The controller publishes what its backend reports; here a controller
that is not running publishes one STARTING replica, as a container backend reports it while it
builds (the build itself is tests/deploy/backends/test_container_builds.py's)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select

from funade.artifacts import ArtifactStore
from funade.cli.output import console
from funade.client import Client
from funade.deploy.backends import Replica, ReplicaSpec, ReplicaState
from funade.deploy.backends.local import LocalBackend
from funade.deploy.controller import DETAIL_CHARS, Controller
from funade.sandbox.layout import Sandbox
from funade.settings import Settings
from funade.store import Database
from funade.store.schema import Deployment, ReplicaRecord
from tests.conftest import Result
from tests.serving.models import Arithmetic

TAG = "localhost/funade/calc:1-0123456789ab"


@pytest.fixture
def remote(app_url: str, admin_key: str, admin: Client, monkeypatch: pytest.MonkeyPatch) -> Client:
    """A control plane without a controller (nothing starts replicas), `funade` pointed at it,
    and ``calc`` deployed there (its rollout waits for a controller)."""
    import funade

    funade.log_model(
        Arithmetic(), "calc", sample_input={"x": [[1.0, 2.0]]}, client=admin, progress=False
    )
    admin.create_deployment("calc")
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)
    return admin


def _publish(settings: Settings, database: Database, replicas: list[Replica]) -> None:
    with database.read() as session:
        deployment_id = session.scalar(select(Deployment.id).where(Deployment.name == "calc"))
    assert deployment_id is not None
    backend = LocalBackend(
        settings.home / "replicas",
        sandbox=Sandbox.from_settings(settings),
        fetch=ArtifactStore.from_settings(settings).open,
    )
    controller = Controller(database, backend)
    try:
        controller._publish(replicas, {"calc": deployment_id})
    finally:
        controller.close()
        backend.close()


def _starting(detail: str) -> Replica:
    spec = ReplicaSpec(deployment="calc", revision=1, source="calc:1")
    return Replica("calc-1-abc", spec, "", ReplicaState.STARTING, time.time(), detail, "t")


def test_a_building_replicas_detail_is_shown(
    remote: Client,
    settings: Settings,
    database: Database,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _publish(settings, database, [_starting(f"building image {TAG}")])

    (replica,) = remote.get_deployment("calc").replicas
    assert (replica.state, replica.detail) == ("starting", f"building image {TAG}")
    monkeypatch.setattr(console, "width", 200)  # the table's rows on one line each
    shown = cli("deployments", "show", "calc")
    assert shown.code == 0, shown.err
    (row,) = [line for line in shown.out.splitlines() if "calc-1-abc" in line]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells == ["calc-1-abc", "rev-1", "starting", "-", f"building image {TAG}"], row
    as_json = json.loads(cli("deployments", "show", "calc", "--json").out)
    assert as_json["replicas"][0]["detail"] == f"building image {TAG}"

    # Once built the detail goes: the controller writes the replica again.
    _publish(settings, database, [_starting("")])
    assert [r.detail for r in remote.get_deployment("calc").replicas] == [""]


def test_a_long_detail_is_cut(remote: Client, settings: Settings, database: Database) -> None:
    _publish(settings, database, [_starting("x" * 5000)])
    with database.read() as session:
        stored = session.scalars(select(ReplicaRecord.detail)).one()
    assert stored == "x" * DETAIL_CHARS
