"""The web dashboard: server-rendered pages over the REST route functions, with small scripts
that call the same REST API for every action (see ``docs/ui.md``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from funade.api import errors as api_errors
from funade.errors import FunadeError

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Add the dashboard's pages at ``/`` and its files at ``/ui/static`` to the API app."""
    from funade.ui.pages import PAGES
    from funade.ui.web import STATIC, SignInRequired, error_page, is_page, sign_in_redirect

    for module in PAGES:
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui")

    async def signin_required(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return sign_in_redirect(exc)

    async def funade_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FunadeError)
        if is_page(request):
            return await run_in_threadpool(error_page, request, exc)
        return await api_errors.handle_funade_error(request, exc)

    app.add_exception_handler(SignInRequired, signin_required)
    app.add_exception_handler(FunadeError, funade_error)
