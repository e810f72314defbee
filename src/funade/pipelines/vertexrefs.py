"""Secret Manager references: how a step's secrets reach it on Vertex AI Pipelines.

Vertex AI runs a ``PipelineSpec`` but ignores the Kubernetes platform spec, so the
``k8s:SECRET/KEY`` references that Kubeflow mounts do nothing there. On the ``vertex`` target a
step's secrets are Secret Manager secret versions,

- ``gsm:projects/PROJECT/secrets/NAME/versions/VERSION`` (``VERSION`` a number or ``latest``),
- ``gsm:NAME`` or ``gsm:NAME/VERSION`` for a secret of the project the job runs in,

and compile (``secret_env``, the hook ``kfpir`` calls) into one variable of the step's
container, ``FUNADE_SECRET_REFS``: a JSON object of environment variable → version's resource
name. Names only, never values. When the step starts, ``funade pipeline step`` reads each
version with the job's service account (``resolve``; it needs
``roles/secretmanager.secretAccessor`` on them) and sets the variables before the step runs.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from funade.errors import InvalidInputError
from funade.pipelines.kfpir import KfpCompileError
from funade.pipelines.submit import EngineError, Request, send

__all__ = [
    "SECRETS_ENDPOINT",
    "SECRET_REFS_ENV",
    "latest_fetch",
    "resolve",
    "secret_env",
    "secret_manager_fetch",
    "secret_manager_hook",
]

SECRETS_ENDPOINT = "https://secretmanager.googleapis.com"

SECRET_REFS_ENV = "FUNADE_SECRET_REFS"  # noqa: S105 - a variable's name
_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20}"
_NAME = r"[A-Za-z0-9_-]{1,255}"
_VERSION = r"latest|[1-9][0-9]{0,18}"
_FULL = re.compile(rf"^projects/({_PROJECT})/secrets/({_NAME})/versions/({_VERSION})$")
_SHORT = re.compile(rf"^({_NAME})(?:/({_VERSION}))?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def resource_name(reference: str, *, project: str, where: str, env_name: str) -> str:
    """The secret version's resource name a ``gsm:`` reference names."""
    text = reference.removeprefix("gsm:") if reference.startswith("gsm:") else None
    full = _FULL.fullmatch(text) if text is not None else None
    if full:
        return text  # type: ignore[return-value]
    short = _SHORT.fullmatch(text) if text is not None else None
    if short:
        return f"projects/{project}/secrets/{short.group(1)}/versions/{short.group(2) or 'latest'}"
    raise KfpCompileError(
        f"{where}: secret {env_name} = {reference!r} is not a Secret Manager reference; "
        "Vertex AI ignores Kubernetes Secrets, and the machine that runs the step has "
        "nothing of yours in it.",
        field=f"secrets.{env_name}",
        value=reference,
        fix=f"Give it as gsm:projects/{project}/secrets/NAME/versions/latest (or gsm:NAME) "
        "in the config of the environment you submit.",
    )


def secret_env(where: str, secrets: Mapping[str, str], *, project: str) -> list[dict[str, str]]:
    """The container env entries that carry ``secrets`` as references (none if no secrets)."""
    if not secrets:
        return []
    refs = {}
    for env_name, reference in sorted(secrets.items()):
        if not _ENV_NAME.fullmatch(env_name) or env_name == SECRET_REFS_ENV:
            raise KfpCompileError(
                f"{where}: {env_name!r} cannot be the name of a secret's variable.",
                field="secrets",
                value=env_name,
                fix="Use letters, digits and underscores, not starting with a digit.",
            )
        refs[env_name] = resource_name(reference, project=project, where=where, env_name=env_name)
    return [{"name": SECRET_REFS_ENV, "value": json.dumps(refs, sort_keys=True)}]


def secret_manager_hook(project: str) -> Callable[[str, Mapping[str, str]], list[dict[str, str]]]:
    """``kfpir``'s secrets hook for a Vertex AI job in ``project``."""

    def hook(where: str, secrets: Mapping[str, str]) -> list[dict[str, str]]:
        return secret_env(where, secrets, project=project)

    return hook


Fetch = Callable[[str], dict[str, Any]]
"""GET ``https://secretmanager.googleapis.com/v1/{name}:access``: the version's JSON."""


def resolve(environ: Mapping[str, str], fetch: Fetch) -> dict[str, str]:
    """The variables ``FUNADE_SECRET_REFS`` in ``environ`` names, read from Secret Manager."""
    text = environ.get(SECRET_REFS_ENV)
    if not text:
        return {}
    try:
        refs = json.loads(text)
    except json.JSONDecodeError:
        refs = None
    if not isinstance(refs, dict) or not all(
        isinstance(k, str) and _ENV_NAME.fullmatch(k) and isinstance(v, str) and _FULL.fullmatch(v)
        for k, v in refs.items()
    ):
        raise InvalidInputError(
            f"{SECRET_REFS_ENV} is not an object of variable names to Secret Manager versions.",
            field=SECRET_REFS_ENV,
            value=text[:200],
            fix="Submit the pipeline with `funade pipeline submit --target vertex`.",
        )
    out = {}
    for env_name, name in refs.items():
        answer = fetch(name)
        data = (answer.get("payload") or {}).get("data")
        if not isinstance(data, str):
            raise InvalidInputError(
                f"Secret Manager gave no data for {name} (variable {env_name}).",
                field=SECRET_REFS_ENV,
                value=name,
                fix="Add a version to the secret, and give the job's service account "
                "roles/secretmanager.secretAccessor on it.",
            )
        out[env_name] = base64.b64decode(data).decode()
    return out


def secret_manager_fetch(http: httpx.Client, endpoint: str = SECRETS_ENDPOINT) -> Fetch:
    """``Fetch`` through Secret Manager's REST API with ``http`` (on Vertex AI: the job's
    service account's credentials, ``submitvertex.google_session``)."""

    def fetch(name: str) -> dict[str, Any]:
        url = f"{endpoint.rstrip('/')}/v1/{name}:access"
        return send(http, Request("GET", url), "Secret Manager")

    return fetch


def latest_fetch(
    http: httpx.Client, endpoint: str = SECRETS_ENDPOINT
) -> Callable[[str], dict[str, Any] | None]:
    """Read a version that holds a JSON object (a per-schedule secret's ``latest``, read
    again on every call): the object, or None while the secret has no version."""

    def fetch(name: str) -> dict[str, Any] | None:
        url = f"{endpoint.rstrip('/')}/v1/{name}:access"
        try:
            answer = send(http, Request("GET", url), "Secret Manager")
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise
        data = (answer.get("payload") or {}).get("data")
        try:
            found = json.loads(base64.b64decode(data)) if isinstance(data, str) else None
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise InvalidInputError(
                f"Secret Manager version {name} does not hold a JSON object.",
                field="FUNADE_SCHEDULE_TOKENS",
                value=name,
                fix="Leave the per-schedule secret to `funade pipeline follow`, which writes it.",
            )
        return found

    return fetch
