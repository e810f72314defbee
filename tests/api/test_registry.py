"""The registry through the REST API: versions, aliases, archive, delete rules, filters, pages."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import funade
from funade.api.schemas import VersionIn
from funade.artifacts import pack_directory
from funade.client import Client
from funade.errors import (
    ConflictError,
    InvalidArtifactError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
    UnknownFlavorError,
)
from tests.models import logistic_regression, sample


def _log(client: Client, name: str = "churn", **kw: object) -> funade.api.schemas.VersionOut:
    return funade.log_model(logistic_regression(), name, sample_input=sample(), client=client, **kw)  # type: ignore[arg-type]


def test_versions_are_numbered_and_immutable(admin: Client) -> None:
    v1 = _log(admin, params={"C": 1.0}, metrics={"auc": 0.9}, tags={"branch": "main"})
    v2 = _log(admin, metrics={"auc": 0.95})
    assert (v1.version, v2.version) == (1, 2)
    assert v1.flavor == "sklearn"
    assert v1.signature["inputs"][0]["datatype"] == "FP64"
    assert v1.golden_examples
    assert v1.golden_examples[0]["inputs"]
    assert v1.artifact.digest == v2.artifact.digest  # same model, same bytes, stored once
    got = admin.get_version("churn", 1)
    assert got.params == {"C": 1.0}
    assert got.metrics == {"auc": 0.9}
    assert got.tags == {"branch": "main"}
    assert got.lineage["python"]
    # Only description, tags and archived change; nothing else is accepted.
    with pytest.raises(InvalidInputError, match="'params' is not a field"):
        admin._request(
            "PATCH", "/api/v1/projects/default/models/churn/versions/1", json={"params": {}}
        )
    changed = admin.update_version("churn", 1, description="first", tags={"x": "y"})
    assert (changed.description, changed.tags, changed.params) == ("first", {"x": "y"}, {"C": 1.0})


def test_aliases_move_between_versions(admin: Client) -> None:
    _log(admin)
    _log(admin)
    admin.set_alias("churn", "production", 1)
    assert admin.get_version("churn", "production").version == 1
    admin.set_alias("churn", "production", 2)
    assert admin.get_version("churn", "production").version == 2
    assert admin.get_model("churn").aliases == {"production": 2}
    assert [a.alias for a in admin.list_aliases("churn")] == ["production"]
    admin.delete_alias("churn", "production")
    with pytest.raises(NotFoundError, match="has no alias 'production'"):
        admin.get_version("churn", "production")
    events = [e.action for e in admin.audit(action="alias.").items]
    assert events == ["alias.delete", "alias.set", "alias.set"]


@pytest.mark.parametrize("alias", ["Production", "1", "latest", "a b", "x" * 70])
def test_bad_alias_is_refused(admin: Client, alias: str) -> None:
    _log(admin)
    with pytest.raises(InvalidNameError) as info:
        admin.set_alias("churn", alias, 1)
    assert info.value.field == "alias"
    assert "lowercase letter" in str(info.value)
    assert admin.list_aliases("churn") == []


def test_alias_to_missing_version_names_the_latest(admin: Client) -> None:
    _log(admin)
    with pytest.raises(NotFoundError, match=r"Model 'churn' has no version 7 \(latest is 1\)"):
        admin.set_alias("churn", "production", 7)


def test_version_held_by_alias_cannot_be_deleted(admin: Client) -> None:
    _log(admin)
    _log(admin)
    admin.set_alias("churn", "production", 1)
    with pytest.raises(ConflictError, match="alias") as info:
        admin.delete_version("churn", 1)
    assert info.value.field == "version"
    assert admin.get_version("churn", 1).version == 1
    admin.delete_version("churn", 2)
    with pytest.raises(NotFoundError):
        admin.get_version("churn", 2)
    assert _log(admin).version == 3  # numbers are never reused


def test_archive_hides_from_latest_and_lists(admin: Client) -> None:
    _log(admin)
    _log(admin)
    admin.update_version("churn", 2, archived=True)
    assert admin.get_version("churn", "latest").version == 1
    with pytest.raises(ConflictError, match="archived"):
        admin.set_alias("churn", "staging", 2)
    assert [v.version for v in admin.list_versions("churn", archived=False).items] == [1]
    admin.update_model("churn", archived=True)
    assert admin.list_models().items == []
    assert [m.name for m in admin.list_models(archived=True).items] == ["churn"]


def test_filters_and_cursor_pagination(admin: Client) -> None:
    for i in range(7):
        _log(admin, metrics={"auc": 0.5 + i / 20}, tags={"branch": "main" if i % 2 else "dev"})
    first = admin.list_versions("churn", limit=3)
    assert [v.version for v in first.items] == [7, 6, 5]
    assert first.next_cursor
    second = admin.list_versions("churn", limit=3, cursor=first.next_cursor)
    assert [v.version for v in second.items] == [4, 3, 2]
    third = admin.list_versions("churn", limit=3, cursor=second.next_cursor)
    assert [v.version for v in third.items] == [1]
    assert third.next_cursor is None
    assert [v.version for v in admin.iter_versions("churn", limit=2)] == [7, 6, 5, 4, 3, 2, 1]
    good = admin.list_versions("churn", metrics=["auc>=0.7"], tags=["branch=main"])
    assert [v.version for v in good.items] == [6]
    with pytest.raises(InvalidInputError, match="Metric filter 'auc>>1'") as info:
        admin.list_versions("churn", metrics=["auc>>1"])
    assert info.value.field == "metric"
    with pytest.raises(InvalidInputError, match="Cursor"):
        admin.list_versions("churn", cursor="garbage!")


def test_model_search(admin: Client) -> None:
    for name in ("churn", "churn-v2", "fraud"):
        _log(admin, name)
    assert [m.name for m in admin.list_models(query="churn").items] == ["churn", "churn-v2"]
    page = admin.list_models(limit=2)
    assert [m.name for m in page.items] == ["churn", "churn-v2"]
    assert [m.name for m in admin.list_models(cursor=page.next_cursor).items] == ["fraud"]


@pytest.mark.parametrize("name", ["../etc", "a/b", "churn..x", "-x", ".hidden", ""])
def test_path_traversal_in_names_is_refused(admin: Client, name: str) -> None:
    with pytest.raises(InvalidNameError, match="is not allowed"):
        _log(admin, name)
    assert admin.list_models().items == []


def test_duplicate_model_name_is_a_conflict(admin: Client) -> None:
    admin._request("POST", "/api/v1/projects/default/models", json={"name": "churn"})
    with pytest.raises(ConflictError, match="already exists"):
        admin._request("POST", "/api/v1/projects/default/models", json={"name": "churn"})


def _upload_package(admin: Client, tmp_path: Path, files: dict[str, bytes]) -> str:
    package = tmp_path / "pkg"
    package.mkdir(parents=True)
    for name, data in files.items():
        (package / name).write_bytes(data)
    blob = pack_directory(package, tmp_path / "pkg.tar")
    admin.upload_artifact(tmp_path / "pkg.tar", digest=blob.digest)
    return blob.digest


def _manifest(flavor: str, files: dict[str, bytes], **meta: object) -> bytes:
    import hashlib
    import json

    entries = {
        n: {"size": len(d), "sha256": f"sha256:{hashlib.sha256(d).hexdigest()}"}
        for n, d in files.items()
    }
    manifest = {
        "format_version": 1,
        "flavor": flavor,
        "flavor_metadata": meta,
        "signature": {
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 20]}],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
            "input_format": "tensor",
        },
        "files": entries,
        "python_version": "3.11",
        "requirements": {},
    }
    return json.dumps(manifest).encode()


def test_malformed_packages_are_refused_and_nothing_is_stored(
    admin: Client, tmp_path: Path
) -> None:
    cases: list[tuple[dict[str, bytes], type[Exception], str]] = [
        ({"model.bin": b"x"}, InvalidArtifactError, "funade.json"),
        ({"funade.json": b"{not json"}, InvalidArtifactError, "funade.json"),
        ({"funade.json": _manifest("tensorflow-x", {})}, UnknownFlavorError, "tensorflow-x"),
    ]
    garbage = {"model.joblib": b"this is not a pickle at all"}
    sklearn_meta = {"serialization": "joblib", "file": "model.joblib", "methods": ["predict"]}
    cases.append(
        (
            {**garbage, "funade.json": _manifest("sklearn", garbage, **sklearn_meta)},
            InvalidArtifactError,
            "model.joblib",
        )
    )
    good = _log(admin)
    for i, (files, error, text) in enumerate(cases):
        digest = _upload_package(admin, tmp_path / str(i), files)
        with pytest.raises(error, match=text):
            admin.create_version("churn", VersionIn(artifact=digest))
        with pytest.raises(error, match=text):
            admin.create_version("fresh", VersionIn(artifact=digest))
    # What was stored is untouched: still one version, the same bytes; no new model either.
    assert [v.version for v in admin.iter_versions("churn")] == [1]
    assert admin.get_version("churn", "latest").artifact == good.artifact
    with pytest.raises(NotFoundError, match="does not exist"):
        admin.get_model("fresh")
    assert [e.action for e in admin.audit(action="version.").items] == ["version.create"]


def test_unuploaded_artifact_is_refused(admin: Client) -> None:
    with pytest.raises(NotFoundError, match="was not uploaded") as info:
        admin.create_version("churn", VersionIn(artifact="sha256:" + "a" * 64))
    assert info.value.field == "artifact"
    with pytest.raises(InvalidInputError, match="is not a digest"):
        admin.create_version("churn", VersionIn(artifact="../../etc/passwd"))


def test_malformed_json_and_unknown_fields_get_4xx(app_url: str, admin_key: str) -> None:
    headers = {"authorization": f"Bearer {admin_key}", "content-type": "application/json"}
    url = f"{app_url}/api/v1/projects/default/models/churn/versions"
    bad = httpx.post(url, content=b"{nope", headers=headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("The request body is not valid JSON.")
    extra = httpx.post(
        url, json={"artifact": "sha256:" + "0" * 64, "flavour": "x"}, headers=headers
    )
    assert extra.status_code == 422
    assert extra.json()["error"]["field"] == "flavour"
    missing = httpx.post(url, json={}, headers=headers)
    assert missing.status_code == 422
    assert (
        missing.json()["error"]["message"]
        == "'artifact' is required. Add 'artifact' to the request."
    )
    nowhere = httpx.get(f"{app_url}/api/v1/nowhere", headers=headers)
    assert nowhere.status_code == 404
    assert nowhere.json()["error"]["code"] == "not_found"
