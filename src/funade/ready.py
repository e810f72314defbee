"""From a rollout that succeeded to a first call: a key, the endpoints and an example request.

`funade deploy`, `funade up --demo` and ``funade.log_model(..., deploy=True)`` end here: a new
predict-only key limited to the deployment and expiring (revoked with the deployment), the
deployment's v1 and v2 endpoints at the gateway, and a request built from the served version's
signature and its first golden example (values of the signature's shapes when it has none).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from funade.errors import FunadeError, PermissionDeniedError

if TYPE_CHECKING:
    from funade.api.schemas import DeploymentOut, RolloutOut, VersionOut
    from funade.client import Client

KEY_LIFETIME = timedelta(days=7)
"""How long the key made for a first call works."""

FINAL = ("succeeded", "failed", "aborted", "rolled_back")


@dataclass(frozen=True)
class ReadyCall:
    """A deployment ready to call. ``key`` is None when none was made (``note`` says why and
    how to make one); ``v1``/``v2`` are request bodies for ``v1_url``/``v2_url``."""

    deployment: str
    model_version: str
    gateway_url: str
    v1: dict[str, Any]
    v2: dict[str, Any]
    key: str | None = None
    key_id: str | None = None
    expires_at: datetime | None = None
    public: bool = False
    note: str | None = None
    version: VersionOut | None = field(default=None, repr=False)
    """The version registered, when ``log_model`` made this."""

    @property
    def v1_url(self) -> str:
        return f"{self.gateway_url}/v1/models/{self.deployment}:predict"

    @property
    def v2_url(self) -> str:
        return f"{self.gateway_url}/v2/models/{self.deployment}/infer"

    @property
    def endpoint(self) -> str:
        """The Open Inference Protocol (v2) endpoint."""
        return self.v2_url

    @property
    def example(self) -> dict[str, Any]:
        """The v2 request body that works (``v1`` is the same row as KServe v1 instances)."""
        return self.v2

    def curls(self, key_text: str | None = None) -> list[str]:
        """The v1 and v2 calls as `curl` command lines, with ``key_text`` (default: the key,
        else ``$FUNADE_PREDICT_KEY``) as the bearer token; without one for a public one."""
        token = key_text or self.key or "$FUNADE_PREDICT_KEY"
        return [
            curl(self.v1_url, self.v1, None if self.public else token),
            curl(self.v2_url, self.v2, None if self.public else token),
        ]


def curl(url: str, body: dict[str, Any], token: str | None) -> str:
    """A `curl` line POSTing ``body`` as JSON to ``url`` (the body quoted for a POSIX shell)."""
    text = json.dumps(body, separators=(", ", ": ")).replace("'", "'\\''")
    auth = "" if token is None else f"-H 'Authorization: Bearer {token}' "
    if token is not None and token.startswith("$"):  # a variable: the shell expands it
        auth = f'-H "Authorization: Bearer {token}" '
    return f"curl {auth}-H 'Content-Type: application/json' -d '{text}' {url}"


# The example request ----------------------------------------------------------------------


def example_requests(
    signature: dict[str, Any], golden: list[dict[str, Any]] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One row as a v1 body (``{"instances": [row]}``) and a v2 body (``{"inputs": [...]}``):
    the first row of the first golden example's inputs, else a row of the signature's shapes
    (zeros, empty strings, false)."""
    specs = [s for s in signature.get("inputs", []) if isinstance(s, dict) and "name" in s]
    recorded: dict[str, dict[str, Any]] = {}
    if golden and isinstance(golden[0], dict):
        for tensor in golden[0].get("inputs", []):
            if isinstance(tensor, dict) and isinstance(tensor.get("name"), str):
                recorded[tensor["name"]] = tensor
    tensors = []
    for spec in specs:
        tensor = _first_row(recorded.get(spec["name"]) or _placeholder(spec))
        if "datatype" in spec:  # the signature's, which the server requires exactly
            tensor["datatype"] = spec["datatype"]
        tensors.append(tensor)
    if not specs:  # no signature was recorded: the golden inputs as they are
        tensors = [_first_row(t) for t in recorded.values()]
    v2 = {"inputs": tensors}
    values = {t["name"]: _nest(t["data"], t["shape"][1:]) for t in tensors}
    row: Any = next(iter(values.values())) if len(values) == 1 else values
    if len(values) == 1 and signature.get("input_format") == "columns":
        row = values  # a one-column table is still a row of named columns
    return {"instances": [row]}, v2


def _first_row(tensor: dict[str, Any]) -> dict[str, Any]:
    shape = [int(d) for d in tensor.get("shape", [])] or [1]
    size = math.prod(shape[1:])
    out = {
        "name": tensor["name"],
        "datatype": tensor.get("datatype", "FP32"),
        "shape": [1, *shape[1:]],
        "data": list(tensor.get("data", []))[:size],
    }
    if isinstance(tensor.get("parameters"), dict):
        out["parameters"] = tensor["parameters"]
    return out


def _placeholder(spec: dict[str, Any]) -> dict[str, Any]:
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.get("shape", [1])] or [1]
    datatype = str(spec.get("datatype", "FP32"))
    value: Any = "" if datatype == "BYTES" else False if datatype == "BOOL" else 0
    return {
        "name": spec["name"],
        "datatype": datatype,
        "shape": shape,
        "data": [value] * math.prod(shape),
    }


def _nest(data: list[Any], shape: list[int]) -> Any:
    """Flat row-major ``data`` of one row as nested lists of ``shape`` (a scalar for [])."""
    if not shape:
        return data[0] if data else None
    step = math.prod(shape[1:])
    return [_nest(data[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


# After a rollout ----------------------------------------------------------------------------


def wait_rollout(
    client: Client, name: str, timeout: float, *, until: tuple[str, ...] = FINAL
) -> RolloutOut:
    """Poll until deployment ``name``'s rollout reaches a state of ``until`` (by default, it
    ends) or ``timeout`` passes; the rollout."""
    deadline = time.monotonic() + timeout
    while True:
        rollout = client.get_deployment(name).rollout
        assert rollout is not None
        if rollout.state in until or time.monotonic() > deadline:
            return rollout
        time.sleep(0.3)


def ready_call(
    client: Client,
    deployment: DeploymentOut,
    *,
    make_key: bool = True,
    lifetime: timedelta = KEY_LIFETIME,
    gateway_url: str | None = None,
    why_no_key: str | None = None,
) -> ReadyCall:
    """The call a live ``deployment`` answers: the version its most traffic goes to, an
    example request, and (``make_key``) a new predict key for it alone, valid for
    ``lifetime``. Without ``make_key`` (or when this client may not make keys, or the
    deployment is public) ``note`` says how to make one, after ``why_no_key``."""
    traffic = deployment.traffic
    revision = (  # the revision most traffic goes to (a canary's stable one), else the newest
        max(traffic.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if traffic
        else deployment.revisions[-1].number
    )
    served = next(r for r in deployment.revisions if r.number == revision)
    version = client.get_version(served.model, str(served.version), project=deployment.project)
    v1, v2 = example_requests(version.signature, version.golden_examples)
    public = bool(deployment.policy.get("public"))
    how = (
        f"Make a key with `funade keys create {deployment.name}-app --scope predict "
        f"--project {deployment.project} --deployment {deployment.name} --expires 30d` and "
        "put it in FUNADE_PREDICT_KEY."
    )
    common: dict[str, Any] = {
        "deployment": deployment.name,
        "model_version": f"{served.model}:{served.version}",
        "v1": v1,
        "v2": v2,
        "public": public,
    }
    fallback = (
        gateway_url
        or client.settings.gateway_url
        or (client.running_up.gateway_url if client.running_up else None)
        or f"http://127.0.0.1:{client.settings.gateway_port}"
    ).rstrip("/")
    if public:
        return ReadyCall(gateway_url=fallback, note="It is public: no key is needed.", **common)
    if not make_key:
        return ReadyCall(
            gateway_url=fallback, note=" ".join(filter(None, [why_no_key, how])), **common
        )
    expires = datetime.now(UTC) + lifetime
    try:
        made = client.create_key(
            f"{deployment.name}-predict",
            ["predict"],
            project=deployment.project,
            deployment=deployment.name,
            expires_at=expires,
        )
    except PermissionDeniedError as exc:
        note = f"No key was made: {exc.message} {how}"
        return ReadyCall(gateway_url=fallback, note=note, **common)
    return ReadyCall(
        gateway_url=(gateway_url or made.gateway_url or fallback).rstrip("/"),
        key=made.key,
        key_id=made.id,
        expires_at=made.expires_at,
        **common,
    )


def wait_for_gateway(call: ReadyCall, timeout: float = 15) -> bool:
    """Wait until the gateway routes to the deployment for the call's key (it reloads its
    routing table every second); False if it did not within ``timeout`` seconds."""
    import httpx

    headers = {"authorization": f"Bearer {call.key}"} if call.key else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(
                f"{call.gateway_url}/v2/models/{call.deployment}/ready", headers=headers
            )
            if answer.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def refuse_without_controller(client: Client, name: str) -> FunadeError:
    """The error for a deployment stored where no controller runs (nothing will start it)."""
    return FunadeError(
        f"Deployment {name!r} is stored, but no controller runs with this API, so nothing "
        "starts it and there is nothing to call yet.",
        field="deploy",
        value=name,
        fix=f"Start `funade up` over {client.settings.home} (the SDK and CLI find it), or set "
        "FUNADE_URL to a running control plane.",
    )
