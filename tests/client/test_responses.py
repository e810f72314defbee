"""client/responses.py: which 404s mean "missing", across control-plane versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from funade.client import Client
from funade.errors import NotFoundError
from tests.conftest import make_settings
from tests.servers import serve

DIGEST = "sha256:" + "1" * 64


def _old_control_plane() -> Starlette:
    """A control plane from before the Funade-Error-Field header: bare 404s."""

    async def artifact(request: Request) -> Response:
        body = {
            "error": {"code": "not_found", "message": "Artifact does not exist.", "field": "digest"}
        }
        return JSONResponse(body, status_code=404)

    async def cache(request: Request) -> Response:
        body = {"error": {"code": "not_found", "message": "No cached step.", "field": "key"}}
        return JSONResponse(body, status_code=404)

    async def project(request: Request) -> Response:
        body = {
            "error": {
                "code": "not_found",
                "message": "Project 'gone' does not exist.",
                "field": "project",
            }
        }
        return JSONResponse(body, status_code=404, headers={"Funade-Error-Field": "project"})

    return Starlette(
        routes=[
            Route("/api/v1/projects/default/artifacts/{digest}", artifact, methods=["GET", "HEAD"]),
            Route("/api/v1/projects/default/pipeline-cache/{key}", cache),
            Route("/api/v1/projects/gone/artifacts/{digest}", project, methods=["GET", "HEAD"]),
        ]
    )


def test_a_404_without_the_field_header_still_means_missing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", f"sqlite:///{tmp_path / 'unused.db'}")
    with (
        serve(_old_control_plane()) as url,
        Client(url=url, api_key="fnd_test", settings=settings) as client,
    ):
        assert client.artifact_exists(DIGEST) is False
        assert client.cache_lookup("k") is None
        with pytest.raises(NotFoundError, match="Project 'gone' does not exist") as info:
            client.artifact_exists(DIGEST, project="gone")
        assert info.value.field == "project"
