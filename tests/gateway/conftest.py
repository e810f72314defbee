"""A gateway in front of the deployment tests' control plane, on each of its HTTP servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from funade.gateway.app import Gateway
from funade.store import Database
from tests.deploy.conftest import Plane, calc, plane  # noqa: F401 - shared fixtures
from tests.servers import serve_gateway_app

SERVERS = ["lean", "uvicorn"]
"""The gateway's HTTP servers (the ``gateway_server`` setting): the tests that take the
``gateway`` fixture run on each."""


@pytest.fixture(params=SERVERS)
def gateway(
    request: pytest.FixtureRequest,
    calc: Plane,  # noqa: F811
    database: Database,
) -> Iterator[tuple[str, Gateway]]:
    app = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
    with serve_gateway_app(app, request.param) as url:
        yield url, app
