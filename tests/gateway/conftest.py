"""A gateway in front of the deployment tests' control plane."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from funade.gateway.app import Gateway
from funade.store import Database
from tests.deploy.conftest import Plane, calc, plane  # noqa: F401 - shared fixtures
from tests.servers import serve


@pytest.fixture
def gateway(calc: Plane, database: Database) -> Iterator[tuple[str, Gateway]]:  # noqa: F811
    app = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
    with serve(app) as url:
        yield url, app
