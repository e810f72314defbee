"""GraphQL at ``/graphql``: the REST API's data in one query, with the same keys and scopes.

Every resolver calls the REST route function for the same thing (after the scope check the
route's dependency would make), so GraphQL cannot drift from REST: the same validation, the
same errors (a ``FunadeError``'s code, field and fix in ``extensions``), the same audit rows.
Types are generated from the REST response models (``api/schemas.py``); free-form objects
(params, lineage, history, outputs) are the ``JSON`` scalar. The schema lives in
``graphschema.py`` and is imported on the first query, not when the app is built.

    { model(name: "churn") { name latestVersion
        versions(limit: 3) { version metrics lineage run { id state steps { instance state } } } }
      deployment(name: "churn") { traffic { revision percent } rollout { state step } } }
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from funade.api.deps import get_state, granted
from funade.api.errors import SafeJSONResponse
from funade.auth.principal import Principal
from funade.errors import InvalidInputError

__all__ = ["mount_explorer", "router"]

MAX_DEPTH = 8
"""Deepest nesting of fields in a query (introspection aside): the deepest one the schema has
today, a project's models' versions' run's steps, is 5."""
MAX_ALIASES = 15
"""Most aliases in a document: each one runs its field again (a cheap way to multiply work)."""
MAX_TOKENS = 2_000
"""Most tokens (names, brackets, colons) in a document: bounds its fields and its parsing."""


class GraphQLRequest(BaseModel):
    query: str = Field(
        max_length=100_000,
        description=f"The document: at most {MAX_TOKENS} tokens, {MAX_ALIASES} aliases and "
        f"fields nested {MAX_DEPTH} deep.",
    )
    variables: dict[str, Any] | None = None
    operationName: str | None = Field(default=None, max_length=256)


router = APIRouter(tags=["graphql"])


@router.post("/graphql")
def execute(
    body: GraphQLRequest,
    request: Request,
    principal: Annotated[Principal, Depends(granted("read"))],
) -> JSONResponse:
    """Run a query or mutation (``{"query": ..., "variables": ...}``) with a key, as for REST:
    no key is a 401 and a predict-only key a 403, before the body is read; each field checks
    its own scope and project. A sync route, so FastAPI runs it in its thread pool."""
    from strawberry.exceptions import MissingQueryError
    from strawberry.schema.exceptions import (
        CannotGetOperationTypeError,
        InvalidOperationTypeError,
    )

    from funade.api.graphschema import Context, schema

    context = Context(request, get_state(request), principal)
    try:
        result = schema.execute_sync(
            body.query,
            variable_values=body.variables,
            operation_name=body.operationName,
            context_value=context,
        )
    except MissingQueryError:
        raise InvalidInputError(
            "The request has an empty query.",
            field="query",
            value=body.query[:80],
            fix='Send a GraphQL document, e.g. {"query": "{ models { name } }"}.',
        ) from None
    except CannotGetOperationTypeError as exc:
        raise InvalidInputError(
            f"{exc.as_http_error_reason()}",
            field="operationName",
            value=body.operationName,
            fix="Name one of the document's operations, or send a document with one.",
        ) from None
    except InvalidOperationTypeError as exc:
        raise InvalidInputError(
            f"The document's operation is a {exc.operation_type.value}, which this API has not.",
            field="query",
            value=body.query[:80],
            fix="Send a query or a mutation.",
        ) from None
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [e.formatted for e in result.errors]
    return SafeJSONResponse(payload)


STATIC = Path(__file__).parent / "static" / "graphiql"
"""GraphiQL's scripts and styles, vendored (static/graphiql/README.md)."""
_VENDORED = {
    "https://unpkg.com/react@18.2.0/umd/react.production.min.js": "react.production.min.js",
    "https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js": (
        "react-dom.production.min.js"
    ),
    "https://unpkg.com/js-cookie@3.0.5/dist/js.cookie.min.js": "js.cookie.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css": "graphiql.min.css",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js": "graphiql.min.js",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css": "plugin-explorer.css",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": (
        "plugin-explorer.umd.js"
    ),
}


@functools.cache
def _explorer_html() -> str:
    """strawberry's GraphiQL page, loading the vendored copies instead of unpkg.com (the
    integrity hashes stay: the bytes are the same)."""
    from strawberry.http.ides import get_graphql_ide_html

    html = get_graphql_ide_html("graphiql")
    for remote, local in _VENDORED.items():
        html = html.replace(remote, f"/static/graphiql/{local}")
    return html


@router.get("/graphql", response_class=HTMLResponse)
def explorer() -> HTMLResponse:
    """The GraphiQL explorer; put your key in its Headers tab as
    ``{"Authorization": "Bearer fnd_..."}``."""
    return HTMLResponse(_explorer_html())


def mount_explorer(app: FastAPI) -> None:
    """Serve the explorer's vendored files at /static/graphiql (public: they hold no data)."""
    app.mount("/static/graphiql", StaticFiles(directory=STATIC), name="graphiql")
