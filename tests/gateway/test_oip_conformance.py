"""The gateway conforms to the Open Inference Protocol's REST definition
(tests/serving/oip/conformance.py) in front of a real replica: a real ``funade up`` in a
subprocess, the echo model (tests/serving/oip/echo.py) logged and deployed as ``echo``, driven
through the gateway with a predict key (``Authorization: Bearer``), the path parameters fixed to
the deployment and its model's version. What a client of the protocol sees at the gateway must
be what it sees at ``funade serve`` (tests/serving/test_oip_conformance.py): the server-level
routes too, and errors in the protocol's shape."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from schemathesis import Case

import funade
from tests.security.platform import funade_up, wait_rollout
from tests.serving.oip import conformance
from tests.serving.oip.echo import NAME, Echo

VERSION = "1"
"""The first version logged of the model."""


@dataclass(frozen=True)
class Deployed:
    url: str
    key: dict[str, str]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, sandboxes: Path) -> Iterator[Deployed]:
    """``funade up``'s gateway in front of ``echo`` (one replica), and a predict key for it."""
    home = tmp_path_factory.mktemp("oip") / "home"
    sandbox = sandboxes / f"oip-{uuid.uuid4().hex[:8]}"
    with funade_up(home, FUNADE_SANDBOX_DIR=str(sandbox)) as up, up.client() as client:
        funade.log_model(
            Echo(), NAME, sample_input=conformance.SAMPLE, client=client, progress=False
        )
        client.create_deployment(NAME)
        deployment = wait_rollout(up, NAME)
        assert deployment["rollout"]["state"] == "succeeded", deployment  # type: ignore[index]
        key = client.create_key("oip", ["predict"], project="default").key
        yield Deployed(up.gateway_url, {"authorization": f"Bearer {key}"})


def _conforms(self: object, case: Case, gateway: Deployed) -> None:
    case.call_and_validate(base_url=gateway.url, headers=gateway.key, checks=conformance.CHECKS)


class TestGateway:
    """The gateway, every operation of the protocol's REST definition, with a predict key; and
    (``test_absent_*``) the routes of a deployment that does not exist: 404, in the error shape."""


conformance.add_tests(TestGateway, conformance.document(NAME, VERSION), _conforms)
conformance.add_tests(
    TestGateway,
    conformance.document(conformance.ABSENT, VERSION, examples=2),
    _conforms,
    prefix="absent_",
    select=conformance.names_a_model,
)
