"""Secrets on Vertex AI are Secret Manager references: compiled as names into the step's
container, read with the job's credentials when the step starts (here from a stand-in of
Secret Manager's REST API on a free port)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from funade.errors import InvalidInputError
from funade.pipelines.submit import EngineError
from funade.pipelines.vertexrefs import (
    SECRET_REFS_ENV,
    resolve,
    secret_env,
    secret_manager_fetch,
)
from tests.pipelines.standin import standin

WHERE = "pipeline 'flow', step 'load'"


def test_references_compile_to_resource_names_only() -> None:
    (entry,) = secret_env(
        WHERE,
        {
            "DB_PASSWORD": "gsm:db-password",
            "API": "gsm:api/3",
            "OTHER": "gsm:projects/123456/secrets/shared/versions/latest",
        },
        project="acme-ml",
    )
    assert entry["name"] == SECRET_REFS_ENV
    assert json.loads(entry["value"]) == {
        "API": "projects/acme-ml/secrets/api/versions/3",
        "DB_PASSWORD": "projects/acme-ml/secrets/db-password/versions/latest",
        "OTHER": "projects/123456/secrets/shared/versions/latest",
    }
    assert secret_env(WHERE, {}, project="acme-ml") == []


@pytest.mark.parametrize(
    "reference",
    [
        "env:DB_PASSWORD",
        "file:/etc/secret",
        "k8s:db/password",
        "gsm:",
        "gsm:projects/acme-ml/secrets/db",
        "gsm:projects/acme-ml/secrets/db/versions/0",
        "gsm:../../other",
        "gsm:db password",
        "gsm:db\n",  # `$` alone would let a trailing newline through
        "gsm:projects/acme-ml/secrets/db/versions/latest\n",
    ],
)
def test_other_references_are_refused(reference: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        secret_env(WHERE, {"DB_PASSWORD": reference}, project="acme-ml")
    assert caught.value.field == "secrets.DB_PASSWORD"
    assert caught.value.value == reference
    assert str(caught.value).startswith(
        f"{WHERE}: secret DB_PASSWORD = {reference!r} is not a Secret Manager reference"
    )


@pytest.mark.parametrize("name", ["1ABC", "A-B", SECRET_REFS_ENV, "A B", "DB\n"])
def test_variable_names_are_checked(name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        secret_env(WHERE, {name: "gsm:db"}, project="acme-ml")
    assert str(caught.value) == (
        f"{WHERE}: {name!r} cannot be the name of a secret's variable. Use letters, digits "
        "and underscores, not starting with a digit."
    )


def test_the_step_reads_its_secrets_from_secret_manager() -> None:
    with standin() as api, httpx.Client() as http:
        api.route(
            "GET",
            r"/v1/projects/acme-ml/secrets/db/versions/latest:access",
            (200, {"payload": {"data": base64.b64encode(b"s3cr3t").decode()}}),
        )
        refs = {"DB_PASSWORD": "projects/acme-ml/secrets/db/versions/latest"}
        environ = {SECRET_REFS_ENV: json.dumps(refs), "PATH": "/bin"}
        assert resolve(environ, secret_manager_fetch(http, api.url)) == {"DB_PASSWORD": "s3cr3t"}
        api.route("GET", r"/v1/.+:access", (403, {"error": {"message": "Permission denied"}}))
        with pytest.raises(EngineError) as caught:
            resolve(environ, secret_manager_fetch(http, api.url))
    assert str(caught.value).startswith(
        f"Secret Manager refused GET {api.url}/v1/projects/acme-ml/secrets/db/versions/"
        "latest:access with 403: Permission denied"
    )
    assert resolve({"PATH": "/bin"}, secret_manager_fetch(http, api.url)) == {}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"A": "projects/p/secrets/x"}),
        json.dumps({"1A": "projects/acme-ml/secrets/x/versions/1"}),
        json.dumps({"A": 3}),
    ],
)
def test_a_malformed_reference_list_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        resolve({SECRET_REFS_ENV: text}, lambda name: {})
    assert caught.value.field == SECRET_REFS_ENV
    assert str(caught.value).startswith(
        f"{SECRET_REFS_ENV} is not an object of variable names to Secret Manager versions."
    )


def test_a_version_without_data_is_an_error() -> None:
    environ = {SECRET_REFS_ENV: json.dumps({"A": "projects/acme-ml/secrets/x/versions/1"})}
    with pytest.raises(InvalidInputError) as caught:
        resolve(environ, lambda name: {"name": name})
    assert str(caught.value).startswith(
        "Secret Manager gave no data for projects/acme-ml/secrets/x/versions/1 (variable A)."
    )
