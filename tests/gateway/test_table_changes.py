"""The gateway reads the whole routing table only when the store's fingerprint of it changed (or
every ``FULL_RELOAD_SECONDS``): each kind of change the table shows is seen at the next look,
and a table at rest costs one small query a look (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from funade.gateway.table import FULL_RELOAD_SECONDS, TableLoader
from funade.serving.config import DEFAULT_MAX_BATCH_SIZE
from funade.store import Database, create_database, upgrade
from funade.store.schema import Deployment, Model, ModelVersion, Project, ReplicaRecord, Revision


def add_deployment(
    db: Database, name: str, *, replicas: int = 1, runtime: dict[str, object] | None = None
) -> None:
    """A deployment of one revision with ``replicas`` ready replica records, as the controller
    leaves them."""
    with db.session() as session:
        project = session.scalar(select(Project).where(Project.name == "default"))
        if project is None:
            project = Project(name="default")
            session.add(project)
            session.flush()
        model = Model(project_id=project.id, name=f"m-{name}")
        version = ModelVersion(
            model=model,
            number=1,
            artifact_digest="sha256:" + "0" * 64,
            artifact_size=1,
            flavor="python",
            manifest={},
        )
        deployment = Deployment(project=project, name=name, model=model, traffic={
            "weights": {"1": 100}}, policy={}, next_revision=2)  # fmt: skip
        session.add_all([model, version, deployment])
        session.flush()
        session.add(
            Revision(
                deployment_id=deployment.id, number=1, version_id=version.id, runtime=runtime or {}
            )
        )
        for index in range(replicas):
            session.add(_replica(deployment.id, f"{name}-{index}", revision=1))


def _replica(deployment_id: int, id_: str, *, revision: int) -> ReplicaRecord:
    return ReplicaRecord(
        id=id_,
        deployment_id=deployment_id,
        revision=revision,
        url=f"http://127.0.0.1:1/{id_}",
        state="ready",
    )


def change(db: Database, edit: Callable[[Session], object]) -> None:
    with db.session() as session:
        edit(session)


def deployment(session: Session, name: str) -> Deployment:
    found = session.scalar(select(Deployment).where(Deployment.name == name))
    assert found is not None
    return found


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """The store, on SQLite and on PostgreSQL (the fingerprint's aggregates on both)."""
    db = create_database(database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture
def loader(database: Database) -> TableLoader:
    add_deployment(database, "calc")
    return TableLoader(database, "g-test")


def test_a_table_at_rest_is_read_once_then_only_looked_at(loader: TableLoader) -> None:
    now = time.time()
    first = loader.load(now)
    assert first.routes["calc"].replicas == {1: ("http://127.0.0.1:1/calc-0",)}
    for step in range(1, 6):
        again = loader.load(now + step)
        assert again.routes is first.routes  # the same table, confirmed current
        assert again.loaded_at == now + step
    assert loader.full_loads == 1
    loader.load(now + FULL_RELOAD_SECONDS + 0.5)  # the backstop: read whole regardless
    assert loader.full_loads == 2


def _ready(session: Session) -> None:
    session.add(_replica(deployment(session, "calc").id, "calc-new", revision=1))


def _failed(session: Session) -> None:
    row = session.get(ReplicaRecord, "calc-0")
    assert row is not None
    row.state = "failed"


def _deleted(session: Session) -> None:
    session.execute(delete(ReplicaRecord).where(ReplicaRecord.id == "calc-0"))


def _traffic(session: Session) -> None:
    row = deployment(session, "calc")
    row.traffic = {"weights": {"1": 100}, "shadow": 1}
    row.generation += 1


def _policy(session: Session) -> None:
    deployment(session, "calc").policy = {"allow_cidrs": ["10.0.0.0/8"]}


def _token(session: Session) -> None:
    row = session.get(ReplicaRecord, "calc-0")
    assert row is not None
    row.token = "rotated"


def _stopped(session: Session) -> None:
    deployment(session, "calc").state = "stopped"


def _removed(session: Session) -> None:
    row = deployment(session, "calc")
    session.execute(delete(ReplicaRecord).where(ReplicaRecord.deployment_id == row.id))
    session.delete(row)


@pytest.mark.parametrize(
    ("edit", "seen"),
    [
        (_ready, lambda t: len(t.routes["calc"].replicas[1]) == 2),
        (_failed, lambda t: t.routes["calc"].replicas == {}),
        (_deleted, lambda t: t.routes["calc"].replicas == {}),
        (_traffic, lambda t: t.routes["calc"].shadow == 1),
        (_policy, lambda t: [str(n) for n in t.routes["calc"].networks] == ["10.0.0.0/8"]),
        (
            _token,
            lambda t: (
                t.routes["calc"].credential("http://127.0.0.1:1/calc-0")
                == [("authorization", "Bearer rotated")]
            ),
        ),
        (_stopped, lambda t: "calc" not in t.routes),
        (_removed, lambda t: "calc" not in t.routes),
    ],
    ids=[
        "replica-ready",
        "replica-failed",
        "replica-deleted",
        "traffic",
        "policy",
        "token",
        "deployment-stopped",
        "deployment-removed",
    ],
)
def test_every_change_the_table_shows_is_seen_at_the_next_look(
    loader: TableLoader,
    database: Database,
    edit: Callable[[Session], object],
    seen: Callable[..., bool],
) -> None:
    now = time.time()
    before = loader.load(now)
    assert not seen(before)
    change(database, edit)
    after = loader.load(now + 0.2)  # well within FULL_RELOAD_SECONDS
    assert seen(after)
    assert loader.full_loads == 2


def test_a_new_deployment_is_seen_at_the_next_look(loader: TableLoader, database: Database) -> None:
    now = time.time()
    assert set(loader.load(now).routes) == {"calc"}
    add_deployment(database, "other", replicas=0)
    assert set(loader.load(now + 0.2).routes) == {"calc", "other"}


def test_the_gateway_merges_as_many_rows_as_each_revision_batches(
    loader: TableLoader, database: Database
) -> None:
    """A merged call holds at most the revision's ``max_batch_size`` rows (its default when the
    revision sets none), so the replica makes one model call of it."""
    add_deployment(database, "small", runtime={"max_batch_size": 32})
    routes = loader.load(time.time()).routes
    assert routes["calc"].max_batch == {1: DEFAULT_MAX_BATCH_SIZE}
    assert routes["small"].max_batch == {1: 32}
