"""The Open Inference Protocol routes fuzzed from their OpenAPI document
(``funade.serving.openapi``, tests/security/fuzzing.py): a real ``funade serve`` process, and a
real gateway in front of a deployment (with a predict key, and without one: every route is then
a 401). The model doubles its input and never raises, so any 5xx is the server's own fault.

The documents are built when this module is collected, from the model's signature, and checked
to be the one ``funade serve`` answers at ``/openapi.json``. A request the document calls
invalid may be a valid one (the document shows one row; the server takes any number, and the
protocol's "as many values as the shape holds" cannot be written in JSON Schema), so the
negative-data check is not run here; every other check is.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import negative_data_rejection

import funade
from funade import sdk
from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.bootstrap import bootstrap
from funade.client import Client
from funade.deploy.backends.local import LocalBackend
from funade.deploy.controller import start_controller
from funade.gateway.app import Gateway
from funade.registry.signature import infer_signature
from funade.sandbox.layout import Sandbox
from funade.serving.openapi import document
from funade.settings import Settings
from funade.store import create_database, upgrade
from tests.security import fuzzing
from tests.servers import serve, serve_gateway_app
from tests.serving.fakes import wait_ready
from tests.serving.models import Drifting

SAMPLE = {"x": np.array([[1.0, 2.0], [3.0, 4.0]])}
SIGNATURE = infer_signature(SAMPLE, Drifting().predict(SAMPLE))
SERVED = document("twice", "1", SIGNATURE, server_version=funade.__version__)
DEPLOYED = document("twice", "1", SIGNATURE, gateway=True)
CHECKS = [check for check in fuzzing.CHECKS if check is not negative_data_rejection]

served = schemathesis.openapi.from_dict(SERVED, config=fuzzing.config(examples=100))
deployed = schemathesis.openapi.from_dict(DEPLOYED, config=fuzzing.config(examples=100))


# funade serve -----------------------------------------------------------------------------


@pytest.fixture(scope="class")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``funade serve twice`` in its own process (so the server's warnings filters, not
    pytest's, apply to what the model computes)."""
    home = tmp_path_factory.mktemp("serve") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUNADE_HOME", str(home))
        try:
            funade.log_model(Drifting(), "twice", sample_input=SAMPLE, progress=False)
        finally:
            sdk._close_default()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    env.update(FUNADE_HOME=str(home), COLUMNS="400")
    command = [sys.executable, "-m", "funade", "serve", "twice", "--port", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r" at (http://[\d.:]+)", line)
        assert match, line + process.stdout.read()
        url = match.group(1)
        wait_ready(url, timeout=60)
        assert httpx.get(f"{url}/openapi.json").json() == _json_roundtrip(SERVED)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _json_roundtrip(doc: dict[str, Any]) -> Any:
    return httpx.Response(200, json=doc).json()


def _fuzz_funade_serve(self: object, case: Case, model_server: str) -> None:
    case.call_and_validate(base_url=model_server, checks=CHECKS)


class TestModelServer:
    """funade serve, every route."""


fuzzing.one_test_per_operation(TestModelServer, served, _fuzz_funade_serve)


# The gateway ------------------------------------------------------------------------------


class Deployed:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="class")
def gateway(tmp_path_factory: pytest.TempPathFactory, sandboxes: Path) -> Iterator[Deployed]:
    """A control plane with a controller that deployed ``twice`` (one verified replica), and a
    gateway in front of it; with a predict key for it."""
    home = tmp_path_factory.mktemp("gateway") / "home"
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home.parent / 'funade.db'}",
        sandbox_dir=sandboxes / f"fuzz-{uuid.uuid4().hex[:8]}",
    )
    db = create_database(settings.resolved_database_url)
    upgrade(db)
    admin_key = bootstrap(settings, db).admin_key
    artifacts = ArtifactStore.from_settings(settings)
    backend = LocalBackend(
        home / "replicas", sandbox=Sandbox.from_settings(settings), fetch=artifacts.open
    )
    _controller, stop = start_controller(db, backend, interval=0.1, grace_seconds=5)
    app = create_app(settings, db, artifacts, controller=True)
    try:
        with (
            serve(app) as url,
            Client(url=url, api_key=admin_key, settings=settings) as client,
        ):
            funade.log_model(
                Drifting(), "twice", sample_input=SAMPLE, client=client, progress=False
            )
            client.create_deployment("twice")
            deadline = time.monotonic() + 90
            while (rollout := client.get_deployment("twice").rollout) is None or (
                rollout.state != "succeeded"
            ):
                assert time.monotonic() < deadline, f"rollout stuck: {rollout}"
                time.sleep(0.1)
            key = client.create_key("fuzz", ["predict"], project="default").key
            routing = Gateway(db, refresh_seconds=0.1, stats_seconds=0.2)
            with serve_gateway_app(routing) as gateway_url:
                deadline = time.monotonic() + 30
                while httpx.get(f"{gateway_url}/healthz").json()["deployments"] < 1:
                    assert time.monotonic() < deadline, "the gateway never saw the deployment"
                    time.sleep(0.1)
                yield Deployed(gateway_url, key)
    finally:
        stop()
        for replica in backend.replicas():
            backend.stop(replica.id, grace_seconds=5)
        backend.close()
        db.dispose()


def _with_a_predict_key(self: object, case: Case, gateway: Deployed) -> None:
    case.call_and_validate(base_url=gateway.url, headers=gateway.key, checks=CHECKS)


def _without_a_key(self: object, case: Case, gateway: Deployed) -> None:
    response = case.call_and_validate(base_url=gateway.url, checks=CHECKS)
    if case.method.upper() == case.operation.method.upper():
        # a deployment of another name does not exist (404): only this one has a key to ask
        ours = (case.path_parameters or {}).get("name") == "twice"
        expected = {401} if ours else {401, 404}
        assert response.status_code in expected, (case.formatted_path, response.text)


class TestGatewayWithKey:
    """The gateway's inference routes with a predict key."""


class TestGatewayWithoutKey:
    """The gateway's inference routes without a key: 401, or 404 for another deployment."""


fuzzing.one_test_per_operation(TestGatewayWithKey, deployed, _with_a_predict_key)
fuzzing.one_test_per_operation(TestGatewayWithoutKey, deployed, _without_a_key)
