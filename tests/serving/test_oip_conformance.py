"""``funade serve`` conforms to the Open Inference Protocol's REST definition
(tests/serving/oip/conformance.py): a real model server from ``create_model_app`` on a free
port, serving the echo model (tests/serving/oip/echo.py) as ``echo`` version 1, driven with
requests generated from the protocol's document, the path parameters fixed to that model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from schemathesis import Case

from funade.registry.package import build_package, load_package
from funade.serving.app import create_model_app
from funade.serving.config import ServeConfig
from funade.serving.runtime import Loaded
from tests.servers import serve
from tests.serving.fakes import wait_ready
from tests.serving.oip import conformance
from tests.serving.oip.echo import NAME, Echo

VERSION = "1"
oip = conformance.document(NAME, VERSION)


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory: Path = tmp_path_factory.mktemp("oip") / "package"
    build_package(Echo(), directory, sample_input=conformance.SAMPLE)

    def load() -> Loaded:
        return Loaded(model=load_package(directory), name=NAME, version=VERSION, digest=None)

    with serve(create_model_app(ServeConfig(source=str(directory), name=NAME), load)) as url:
        wait_ready(url)
        yield url


def _conforms(self: object, case: Case, model_server: str) -> None:
    case.call_and_validate(base_url=model_server, checks=conformance.CHECKS)


class TestModelServer:
    """funade serve, every operation of the protocol's REST definition; and (``test_absent_*``)
    the routes of a model it does not serve: 404, in the error shape."""


conformance.add_tests(TestModelServer, oip, _conforms)
conformance.add_tests(
    TestModelServer,
    conformance.document(conformance.ABSENT, VERSION, examples=2),
    _conforms,
    prefix="absent_",
    select=conformance.names_a_model,
)


def test_the_document_names_the_spec_version_and_commit_it_was_written_from() -> None:
    text = conformance.DOCUMENT.read_text()
    assert yaml.safe_load(text)["info"]["version"] == conformance.SPEC_VERSION
    assert f"commit      {conformance.SPEC_COMMIT}" in text
    assert "github.com/kserve/open-inference-protocol" in text
