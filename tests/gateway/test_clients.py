"""Real, unmodified Open Inference Protocol clients through the gateway of a real `funade up`.

NVIDIA's ``tritonclient.http`` and KServe's ``InferenceRESTClient`` call the gateway as they would
call Triton: the echo model (``tests/serving/oip/echo.py``: every input back as ``<name>_out``)
deployed as ``mixed``, taking one ``[-1, 3]`` input of every datatype, so every request carries
all thirteen datatypes, each with its extremes (``tests.serving.protocol``); inputs and outputs
binary and JSON both ways. A predict key goes in each call's headers, as users send it. What the
model server answers alone (``tests/serving/test_clients.py``), the gateway answers too: health
and metadata without a key, Triton's extensions, errors the clients can read, and a datatype
other than the signature's refused, merged or not.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

import funade
from funade import __version__
from tests.security.platform import funade_up, wait_rollout
from tests.serving.oip.echo import Echo
from tests.serving.protocol import DATATYPES, SAMPLES
from tests.serving.test_clients import (
    as_text,
    assert_exact,
    kserve_expected,
    kserve_inputs,
    kserve_numpy,
    triton_error,
    triton_inputs,
)

T = TypeVar("T")
MODEL = "mixed"
TIMEOUT = 20.0
NAMES = [datatype.lower() for datatype in DATATYPES]
"""The model's inputs: one per datatype, named after it."""


@dataclass(frozen=True)
class Gateway:
    url: str
    key: str
    """A predict key of the deployment's project."""
    outsider: str
    """A predict key of another project, which may not call it."""
    version: str

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def headers(self, key: str | None = None) -> dict[str, str]:
        """Fresh headers each call: tritonclient writes into the dict it is given."""
        return {"authorization": f"Bearer {key or self.key}"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, sandboxes: Path) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("clients") / "home"
    sandbox = sandboxes / f"clients-{uuid.uuid4().hex[:8]}"
    # plain values to register with (the extremes are sent over HTTP; the store keeps golden
    # examples' integers within 64-bit signed)
    sample = {
        name: np.full((1, 3), b"ok", dtype=object)
        if d == "BYTES"
        else np.ones((1, 3), SAMPLES[d].dtype)
        for name, d in zip(NAMES, DATATYPES, strict=True)
    }
    with funade_up(home, FUNADE_SANDBOX_DIR=str(sandbox)) as up, up.client() as client:
        version = funade.log_model(
            Echo(), MODEL, sample_input=sample, client=client, progress=False
        ).version
        client.create_deployment(MODEL)
        deployment = wait_rollout(up, MODEL)
        assert deployment["rollout"]["state"] == "succeeded", deployment  # type: ignore[index]
        key = client.create_key("clients", ["predict"], project="default").key
        client.create_project("elsewhere")
        outsider = client.create_key("outsider", ["predict"], project="elsewhere").key
        ready = f"{up.gateway_url}/v2/models/{MODEL}/ready"
        deadline = time.monotonic() + TIMEOUT  # until the gateway's table has the replica
        while httpx.get(ready, headers={"authorization": f"Bearer {key}"}).status_code != 200:
            assert time.monotonic() < deadline, "the gateway never routed to the replica"
            time.sleep(0.1)
        yield Gateway(up.gateway_url, key, outsider, str(version))


def sent() -> dict[str, np.ndarray[Any, Any]]:
    return {name: SAMPLES[d] for name, d in zip(NAMES, DATATYPES, strict=True)}


def triton_client(gateway: Gateway) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(
        gateway.address, connection_timeout=TIMEOUT, network_timeout=TIMEOUT
    )


def kserve(call: Callable[[InferenceRESTClient], Awaitable[T]]) -> T:
    async def main() -> T:
        config = RESTConfig(protocol="v2", retries=0, timeout=TIMEOUT)
        async with InferenceRESTClient(config) as client:
            return await call(client)

    return asyncio.run(main())


# --- tritonclient -------------------------------------------------------------------------------


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
def test_tritonclient_round_trips_every_datatype_through_the_gateway(
    gateway: Gateway, binary_in: bool, binary_out: bool
) -> None:
    """JSON-only inputs go with no Content-Type (tritonclient sends none): the gateway passes the
    body on as it came, and the replica reads it as JSON."""
    tensors = sent()
    outputs = [triton.InferRequestedOutput(f"{n}_out", binary_data=binary_out) for n in NAMES]
    with triton_client(gateway) as client:
        result = client.infer(
            MODEL,
            triton_inputs(tensors, binary_in),
            outputs=outputs,
            request_id="through",
            headers=gateway.headers(),
        )
    response = result.get_response()
    assert response["model_name"] == MODEL
    assert response["model_version"] == gateway.version
    assert response["id"] == "through"
    for name, array in tensors.items():
        output = result.get_output(f"{name}_out")
        assert output["datatype"] == name.upper()
        assert ("data" in output) is not binary_out
        expected = as_text(array) if name == "bytes" and not binary_out else array
        assert_exact(result.as_numpy(f"{name}_out"), expected)


def test_a_json_body_without_a_content_type_passes_through_as_sent(gateway: Gateway) -> None:
    body = {
        "inputs": [
            {"name": n, "datatype": d, "shape": [1, 3], "data": SAMPLES[d][0].tolist()}
            for n, d in zip(NAMES, DATATYPES, strict=True)
            if d != "BYTES"
        ]
        + [{"name": "bytes", "datatype": "BYTES", "shape": [1, 3], "data": ["a", "b", "c"]}],
        "outputs": [{"name": "int8_out"}],
    }
    request = httpx.Request(
        "POST",
        f"{gateway.url}/v2/models/{MODEL}/infer",
        content=httpx.Request("POST", "http://x", json=body).content,
        headers=gateway.headers(),
    )
    assert "content-type" not in request.headers
    with httpx.Client(timeout=TIMEOUT) as http:
        answer = http.send(request)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == SAMPLES["INT8"][0].tolist()


def test_tritonclient_server_routes_need_no_key_and_model_routes_do(gateway: Gateway) -> None:
    with triton_client(gateway) as client:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.get_server_metadata() == {
            "name": "funade",
            "version": __version__,
            "extensions": [
                "binary_tensor_data",
                "classification",
                "model_configuration",
                "statistics",
            ],
        }
        assert client.is_model_ready(MODEL, headers=gateway.headers())
        assert not client.is_model_ready(MODEL)  # no key: a 401, which is not ready
        error = triton_error(lambda: client.get_model_metadata(MODEL))
        assert error.status() == "401"
        assert error.message() == (
            "Deployment 'mixed' needs an API key. Send `Authorization: Bearer fnd_...` with a "
            "key that has the predict scope."
        )


def test_tritonclient_reads_the_gateways_own_errors(gateway: Gateway) -> None:
    """tritonclient reads ``{"error": "<text>"}``; the gateway's own refusals use that shape."""
    with triton_client(gateway) as client:
        error = triton_error(
            lambda: client.infer(
                "nope", triton_inputs(sent(), binary=True), headers=gateway.headers()
            )
        )
        assert error.status() == "404"
        assert error.message().startswith("Deployment 'nope' does not exist.")
        error = triton_error(lambda: client.get_model_metadata(MODEL, headers={"x": "y"}))
        assert error.status() == "401"
        hidden = triton_error(
            lambda: client.get_model_config(MODEL, headers=gateway.headers(gateway.outsider))
        )
        assert hidden.status() == "404"
        assert hidden.message().startswith("Deployment 'mixed' does not exist.")


def test_tritonclient_extensions_through_the_gateway(gateway: Gateway) -> None:
    with triton_client(gateway) as client:
        config = client.get_model_config(MODEL, headers=gateway.headers())
        assert config["name"] == MODEL
        assert config["max_batch_size"] > 0
        assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [
            (n, "TYPE_STRING" if d == "BYTES" else f"TYPE_{d}", [3])
            for n, d in zip(NAMES, DATATYPES, strict=True)
        ]
        client.infer(MODEL, triton_inputs(sent(), binary=True), headers=gateway.headers())
        stats = client.get_inference_statistics(MODEL, headers=gateway.headers())
        (model,) = stats["model_stats"]
        assert model["name"] == MODEL
        assert model["version"] == gateway.version
        assert model["inference_stats"]["success"]["count"] >= 1
        assert model["inference_count"] >= 2  # rows
        index = client.get_model_repository_index(headers=gateway.headers())
        assert index == [{"name": MODEL, "version": gateway.version, "state": "READY"}]
        assert client.get_model_repository_index() == []  # no key: only public deployments
        assert client.get_model_repository_index(headers=gateway.headers(gateway.outsider)) == []
        error = triton_error(lambda: client.get_model_repository_index(headers={"x-api-key": "x"}))
        assert error.status() == "401"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_datatype_other_than_the_signatures_is_a_400_at_the_gateway_merged_or_not(
    gateway: Gateway, binary: bool
) -> None:
    """FP32 values sent for the FP64 input, by eight clients at once (the gateway merges what it
    can): every one gets the replica's 400 naming the input and both datatypes, and a correct
    request among them its answer."""
    wrong = sent()
    wrong["fp64"] = np.ones((2, 3), np.float32)

    def call(tensors: dict[str, np.ndarray[Any, Any]]) -> Any:
        with triton_client(gateway) as client:
            try:
                return client.infer(
                    MODEL, triton_inputs(tensors, binary), headers=gateway.headers()
                )
            except InferenceServerException as exc:
                return exc

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, [wrong] * 7 + [sent()]))
    for error in results[:7]:
        assert isinstance(error, InferenceServerException), error
        assert error.status() == "400"
        assert error.message() == (
            "Input 'fp64' has datatype FP32; the model takes FP64. Send 'fp64' as FP64, or "
            "deploy with widen_datatypes on to have FP32 converted."
        )
    assert not isinstance(results[7], InferenceServerException), results[7]
    assert_exact(results[7].as_numpy("fp64_out"), SAMPLES["FP64"])


# --- KServe's REST client -----------------------------------------------------------------------


def test_kserve_health_through_the_gateway(gateway: Gateway) -> None:
    async def call(client: InferenceRESTClient) -> list[bool]:
        return [
            await client.is_server_live(gateway.url),
            await client.is_server_ready(gateway.url),
            await client.is_model_ready(gateway.url, MODEL, headers=gateway.headers()),
            await client.is_model_ready(gateway.url, "nope", headers=gateway.headers()),
        ]

    assert kserve(call) == [True, True, True, False]

    async def v1(_client: InferenceRESTClient) -> bool:
        config = RESTConfig(protocol="v1", retries=0, timeout=TIMEOUT)
        async with InferenceRESTClient(config) as client:
            return await client.is_server_live(gateway.url)

    assert kserve(v1)


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
def test_kserve_round_trips_every_datatype_through_the_gateway(
    gateway: Gateway, binary_in: bool, binary_out: bool
) -> None:
    tensors = sent()
    # KServe's client refuses FP16 in JSON itself: FP16 goes binary either way.
    request = InferRequest(
        MODEL,
        kserve_inputs(tensors, lambda i: binary_in or DATATYPES[i] == "FP16"),
        request_id="kserve-through",
        request_outputs=[
            RequestedOutput(f"{n}_out", parameters={"binary_data": binary_out}) for n in NAMES
        ],
    )
    response = kserve(
        lambda client: client.infer(gateway.url, request, MODEL, headers=gateway.headers())
    )
    assert response.id == "kserve-through"
    assert response.model_name == MODEL
    for name, array in tensors.items():
        assert_exact(kserve_numpy(response, f"{name}_out"), kserve_expected(array))


def test_kserve_gets_a_readable_error_from_the_gateway(gateway: Gateway) -> None:
    request = InferRequest(MODEL, kserve_inputs(sent(), binary=True))

    async def call(client: InferenceRESTClient) -> Any:
        return await client.infer(gateway.url, request, MODEL)  # no key

    with pytest.raises(httpx.HTTPStatusError) as info:
        kserve(call)
    assert info.value.response.status_code == 401
    assert "Deployment 'mixed' needs an API key." in str(info.value)
