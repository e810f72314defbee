"""The smaller weak points of issue 17, each reproduced and shown closed: an expired key that the
gateway's cache kept working, a damaged blob served whole with a 200, partial uploads never
removed, the gateway's open /metrics, the last global admin key revoking itself, a gateway 403
that named another project, and a policy PATCH that dropped the IP allowlist it did not mention."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.api.app import create_app
from funade.artifacts import ArtifactStore
from funade.artifacts.digest import digest_hex
from funade.client import Client
from funade.errors import ArtifactCorruptError, ConflictError
from funade.gateway.app import Gateway
from funade.settings import Settings
from funade.store import Database
from tests.deploy.conftest import Plane, calc, plane, until  # noqa: F401 - shared fixtures
from tests.servers import serve, serve_gateway_app

BODY = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
PREDICT = "/v2/models/calc/infer"


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def admin_key(of: Plane) -> str:
    return str(of.client._http.headers["authorization"])[len("Bearer ") :]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error's code, message and fix: from the control plane's ``{"error": {...}}``, or
    from the gateway's protocol shape ``{"error": "<message> <fix>", "code", "fix"}``."""
    assert response.status_code == status, response.text
    doc = response.json()
    if isinstance(doc["error"], str):
        assert set(doc) == {"error", "code", "fix"}, doc
        message = doc["error"].removesuffix(doc["fix"]).strip() if doc["fix"] else doc["error"]
        return {"code": doc["code"], "message": message, "fix": doc["fix"]}
    error: dict[str, Any] = doc["error"]
    return error


@pytest.fixture
def gateway(calc: Plane, database: Database) -> Iterator[tuple[str, Gateway]]:  # noqa: F811
    app = Gateway(database, refresh_seconds=0.1, stats_seconds=0.2)
    with serve_gateway_app(app) as url:
        yield url, app


# An expired key at the gateway ---------------------------------------------------------------


def test_an_expired_group_token_is_refused_the_moment_it_expires(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],
) -> None:
    url, app = gateway
    app.keys.ttl = 600.0  # however long the check is cached, the expiry is not
    expires = datetime.now(UTC) + timedelta(seconds=4)
    token = calc.client.create_key(
        "kiosk", ["predict"], project="default", deployment="calc", kind="group", expires_at=expires
    ).key
    assert httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(token)).status_code == 200
    until(lambda: datetime.now(UTC) > expires, 10, "the token to expire")
    expired = error_of(httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(token)), 401)
    assert expired["code"] == "unauthenticated"
    assert "(kiosk) expired at" in expired["message"]
    assert expired["fix"] == "Ask an admin for a new key (`funade keys create`)."
    page = httpx.get(f"{url}/try/calc/info", headers=bearer(token))  # its try-it page too
    assert "(kiosk) expired at" in error_of(page, 401)["message"]


# A damaged blob ------------------------------------------------------------------------------


def _blob_file(settings: Settings, digest: str) -> Path:
    hex_ = digest_hex(digest)
    return settings.home / "artifacts" / "blobs" / "sha256" / hex_[:2] / hex_


def _upload(admin: Client, tmp_path: Path, data: bytes) -> str:
    path = tmp_path / f"blob-{uuid.uuid4().hex}"
    path.write_bytes(data)
    return admin.upload_artifact(path).digest


def test_a_damaged_small_blob_is_a_500_error_before_any_byte(
    admin: Client, app_url: str, admin_key: str, settings: Settings, tmp_path: Path
) -> None:
    digest = _upload(admin, tmp_path, b"weights " * 1000)
    blob = _blob_file(settings, digest)
    blob.write_bytes(b"Weights " + blob.read_bytes()[8:])  # one letter changed, same size
    url = f"{app_url}/api/v1/projects/default/artifacts/{digest}"
    error = error_of(httpx.get(url, headers=bearer(admin_key)), 500)
    assert error["code"] == "artifact_corrupt"
    assert error["field"] == "digest"
    assert f"Stored blob {digest} is damaged: its bytes hash to sha256:" in error["message"]
    assert error["fix"] == "Restore it from a backup or re-register the model."
    with pytest.raises(ArtifactCorruptError, match="is damaged"):
        admin.download_artifact(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["changed", "longer", "shorter"])
def test_a_damaged_large_blob_never_arrives_whole(
    damage: str,
    admin: Client,
    app_url: str,
    admin_key: str,
    settings: Settings,
    tmp_path: Path,
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 1000)  # over the size verified before sending
    digest = _upload(admin, tmp_path, data)
    blob = _blob_file(settings, digest)
    if damage == "changed":
        blob.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "longer":  # the right bytes, then more: still not the blob
        blob.write_bytes(data[: 1024 * 1024] + bytes(1) + data[1024 * 1024 :])
    else:
        blob.write_bytes(data[:-10])
    url = f"{app_url}/api/v1/projects/default/artifacts/{digest}"
    received = bytearray()
    with httpx.stream("GET", url, headers=bearer(admin_key)) as response:
        assert response.status_code == 200  # the answer started before the end was read
        assert int(response.headers["content-length"]) == len(data)
        with pytest.raises(httpx.RemoteProtocolError):
            _read_into(received, response)
    assert len(received) < len(data), "the transfer broke off short of its length"
    with pytest.raises(ArtifactCorruptError, match="was cut off"):
        admin.download_artifact(digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ArtifactCorruptError, match="was cut off"):  # what the model cache reads
        b"".join(admin.open_artifact(digest))


def _read_into(received: bytearray, response: httpx.Response) -> None:
    for chunk in response.iter_raw():
        received += chunk


def test_a_sound_large_blob_streams_whole(
    admin: Client, app_url: str, admin_key: str, tmp_path: Path
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 1000)
    digest = _upload(admin, tmp_path, data)
    got = httpx.get(
        f"{app_url}/api/v1/projects/default/artifacts/{digest}", headers=bearer(admin_key)
    )
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == digest_hex(digest)


# Partial uploads -----------------------------------------------------------------------------


def _leftover(uploads: Path, age_seconds: float) -> Path:
    uploads.mkdir(parents=True, exist_ok=True)
    path = uploads / uuid.uuid4().hex
    path.write_bytes(b"half a model")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def test_partial_uploads_left_by_a_crash_are_removed_at_start_and_by_age(
    settings: Settings, database: Database, admin_key: str
) -> None:
    uploads = settings.home / "artifacts" / "uploads"
    abandoned = _leftover(uploads, age_seconds=2 * 86400)
    in_flight = _leftover(uploads, age_seconds=5)
    app = create_app(settings, database, ArtifactStore.from_settings(settings))
    with serve(app):
        assert not abandoned.exists(), "removed when the control plane starts"
        assert in_flight.exists(), "an upload written to a moment ago is left alone"

    # While it runs, a writer looks again now and then (here: at every upload).
    store = ArtifactStore(str(settings.home / "artifacts"), sweep_seconds=0)
    later = _leftover(uploads, age_seconds=2 * 3600)
    store.put_bytes(b"another model")
    assert not later.exists()
    assert in_flight.exists()
    assert store.clean_uploads(older_than=0) == 1  # what a test may ask for: all of them
    assert list(uploads.iterdir()) == []


# /metrics ------------------------------------------------------------------------------------


def test_the_gateways_metrics_need_a_read_key_and_show_only_its_projects(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],
) -> None:
    url, _ = gateway
    assert httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(admin_key(calc))).is_success
    anonymous = httpx.get(f"{url}/metrics")
    error = error_of(anonymous, 401)
    assert error["code"] == "unauthenticated"
    assert "needs an API key with the read scope" in error["message"]
    assert "authorization: {credentials: fnd_...}" in error["fix"]
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "calc" not in anonymous.text

    predictor = calc.client.create_key("app", ["predict"], project="default").key
    refused = error_of(httpx.get(f"{url}/metrics", headers=bearer(predictor)), 403)
    assert refused["code"] == "permission_denied"
    assert "the gateway's /metrics needs 'read'" in refused["message"]

    calc.client.create_project("other")
    outsider = calc.client.create_key("their-prometheus", ["read"], project="other").key
    theirs = httpx.get(f"{url}/metrics", headers=bearer(outsider))
    assert theirs.status_code == 200
    assert "# TYPE funade_gateway_requests_total counter" in theirs.text
    assert "calc" not in theirs.text, "another project's deployment names stay hidden"

    own = calc.client.create_key("prometheus", ["read"], project="default").key
    for key in (own, admin_key(calc)):
        mine = httpx.get(f"{url}/metrics", headers=bearer(key))
        assert mine.status_code == 200
        expected = 'funade_gateway_requests_total{deployment="calc",revision="1",status="200"}'
        assert expected in mine.text


def test_the_control_planes_metrics_need_a_read_key(calc: Plane) -> None:  # noqa: F811
    anonymous = error_of(httpx.get(f"{calc.url}/metrics"), 401)
    assert anonymous["code"] == "unauthenticated"
    predictor = calc.client.create_key("app", ["predict"], project="default").key
    refused = error_of(httpx.get(f"{calc.url}/metrics", headers=bearer(predictor)), 403)
    assert refused["code"] == "permission_denied"


# The last global admin key -------------------------------------------------------------------


def test_the_only_global_admin_key_cannot_revoke_itself(
    admin: Client, app_url: str, admin_key: str, settings: Settings
) -> None:
    me = admin.whoami().key_id
    assert me is not None
    with pytest.raises(ConflictError) as caught:
        admin.revoke_key(me)
    assert "is the only global admin key" in caught.value.message
    assert caught.value.field == "key_id"
    assert "`funade keys rotate-admin`" in (caught.value.fix or "")
    assert "`funade keys create NAME --scope admin`" in (caught.value.fix or "")
    raw = httpx.delete(f"{app_url}/api/v1/keys/{me}", headers=bearer(admin_key))
    assert error_of(raw, 409)["code"] == "conflict"
    assert admin.whoami().key_id == me, "it still works"

    # A project's admin key is no global one: it goes. With a second global admin key, so
    # does the first; then the second is the only one left.
    admin.create_project("p")
    project_admin = admin.create_key("p-admin", ["admin"], project="p")
    assert admin.revoke_key(project_admin.id).revoked_at is not None
    spare = admin.create_key("spare-admin", ["admin"])
    assert admin.revoke_key(me).revoked_at is not None
    second = Client(url=app_url, api_key=spare.key, settings=settings)
    with second, pytest.raises(ConflictError):
        second.revoke_key(spare.id)


# A key of another project at the gateway -----------------------------------------------------


def test_a_key_of_another_project_finds_no_deployment_at_the_gateway(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],
) -> None:
    url, _ = gateway
    calc.client.create_project("other")
    other = calc.client.create_key("their-app", ["predict"], project="other").key
    missing = httpx.post(f"{url}/v2/models/nope/infer", json=BODY, headers=bearer(other))
    hidden = httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(other))
    assert error_of(hidden, 404) == {
        **error_of(missing, 404),
        "message": "Deployment 'calc' does not exist.",
    }
    assert "default" not in hidden.text
    theirs = calc.client.create_key(
        "kiosk", ["predict"], project="other", deployment="elsewhere"
    ).key
    assert error_of(httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(theirs)), 404)
    page = httpx.get(f"{url}/try/calc/info", headers=bearer(other))
    assert error_of(page, 404)["message"] == "Deployment 'calc' does not exist."

    # A key of the deployment's own project may be told why it is refused.
    reader = calc.client.create_key("reader", ["read"], project="default").key
    refused = error_of(httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(reader)), 403)
    assert refused["message"] == "Key 'reader' may not call deployment 'calc'."


# A partial policy ----------------------------------------------------------------------------


def test_a_policy_patch_merges_and_never_drops_the_allowlist(
    calc: Plane,  # noqa: F811
    gateway: tuple[str, Gateway],
) -> None:
    url, app = gateway
    calc.client.update_deployment("calc", policy={"allow_cidrs": ["10.0.0.0/8"]})
    changed = calc.client.update_deployment(
        "calc", policy={"rate_limit": {"per_second": 100, "burst": 100}}
    )
    assert changed.policy["allow_cidrs"] == ["10.0.0.0/8"], "the allowlist stays"
    assert changed.policy["rate_limit"] == {"per_second": 100.0, "burst": 100}
    until(lambda: app.table.routes["calc"].policy.rate_limit is not None, 10, "the new policy")
    outside = httpx.post(f"{url}{PREDICT}", json=BODY, headers=bearer(admin_key(calc)))
    assert error_of(outside, 403)["message"] == "Address 127.0.0.1 may not call 'calc'."

    # A rate limit merges field by field; null puts a field back to its default.
    burst = calc.client.update_deployment("calc", policy={"rate_limit": {"burst": 5}})
    assert burst.policy["rate_limit"] == {"per_second": 100.0, "burst": 5}
    reset = calc.client.update_deployment("calc", policy={"rate_limit": None})
    assert reset.policy["rate_limit"] is None
    assert reset.policy["allow_cidrs"] == ["10.0.0.0/8"]
    audit = calc.client.audit(action="deployment.update").items[0]
    assert audit.details["policy"]["allow_cidrs"] == ["10.0.0.0/8"], "the audit row has it all"

    # What the merge makes is checked as a whole, and named.
    raw = httpx.Client(base_url=calc.url, headers=bearer(admin_key(calc)))
    with raw:
        bad = raw.patch(
            "/api/v1/deployments/calc", json={"policy": {"rate_limit": {"per_second": -1}}}
        )
        error = error_of(bad, 422)
        assert error["code"] == "invalid_input"
        assert error["field"] == "policy.rate_limit.per_second"
        assert error["value"] == -1
        assert "null resets one to its default" in error["fix"]
        unknown = error_of(raw.patch("/api/v1/deployments/calc", json={"policy": {"open": 1}}), 422)
        assert unknown["field"] == "policy.open"
    assert calc.client.get_deployment("calc").policy["allow_cidrs"] == ["10.0.0.0/8"]
