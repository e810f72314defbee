"""The deployments API without a controller: what it stores, and every refusal with its field,
value and fix (nothing stored changes on a refusal)."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

import funade
from funade.client import Client
from funade.errors import (
    ConflictError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
    PermissionDeniedError,
)
from tests.serving.models import Arithmetic


@pytest.fixture
def calc(admin: Client) -> Client:
    """Model ``calc`` with two versions and deployment ``calc`` of version 1 (no controller
    runs, so its first rollout stays verifying)."""
    for _ in range(2):
        funade.log_model(
            Arithmetic(), "calc", sample_input={"x": np.ones((1, 2))}, client=admin, progress=False
        )
    admin.create_deployment("calc", version="1", replicas=2, runtime={"workers": 2})
    return admin


def test_create_stores_revision_one_and_its_rollout(calc: Client) -> None:
    deployment = calc.get_deployment("calc")
    assert deployment.controller is False, "no controller runs beside this API"
    assert (deployment.project, deployment.model, deployment.state) == ("default", "calc", "active")
    assert deployment.traffic == {}
    [revision] = deployment.revisions
    assert (revision.number, revision.version, revision.replicas) == (1, 1, 2)
    assert revision.runtime["workers"] == 2
    assert deployment.policy["public"] is False
    assert deployment.rollout is not None
    assert (deployment.rollout.state, deployment.rollout.strategy) == ("verifying", "direct")
    [event] = calc.audit(action="deployment.create").items
    assert event.target == "calc"
    assert event.details["model"] == "calc:1"


def test_a_name_defaults_to_the_model_and_a_version_to_the_latest(admin: Client) -> None:
    funade.log_model(
        Arithmetic(), "calc", sample_input={"x": np.ones((1, 2))}, client=admin, progress=False
    )
    created = admin.create_deployment("calc", name="calc-b")
    assert created.name == "calc-b"
    assert created.revisions[0].version == 1


def _refused(call: Any, error: type[Exception], match: str) -> Any:
    with pytest.raises(error, match=match) as info:
        call()
    return info.value


def test_bad_names_and_missing_models_are_refused(admin: Client, calc: Client) -> None:
    exc = _refused(
        lambda: admin.create_deployment("calc", name="Calc_1"), InvalidNameError, "is not allowed"
    )
    assert (exc.field, exc.value) == ("name", "Calc_1")
    assert "lowercase letters" in exc.fix
    exc = _refused(lambda: admin.create_deployment("nope"), NotFoundError, "Model 'nope'")
    assert exc.field == "model"
    exc = _refused(
        lambda: admin.create_deployment("calc", name="calc-9", version="9"),
        NotFoundError,
        "no version 9",
    )
    assert exc.field == "version"
    exc = _refused(
        lambda: admin.create_deployment("calc"), ConflictError, "is taken in this project"
    )
    assert exc.field == "name"


def test_a_taken_name_tells_a_rest_client_which_json_field_to_send(
    calc: Client, app_url: str, admin_key: str
) -> None:
    """A REST client (no CLI) gets a fix it can act on: the body's ``name``, or a PATCH."""
    answer = httpx.post(
        f"{app_url}/api/v1/deployments",
        json={"model": "calc", "version": "2"},
        headers={"authorization": f"Bearer {admin_key}"},
    )
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"], error["value"]) == ("conflict", "name", "calc")
    assert error["message"].startswith("Deployment name 'calc' is taken in this project.")
    assert error["fix"].startswith("Send another `name`"), error["fix"]
    assert "PATCH /api/v1/deployments/calc" in error["fix"]
    assert calc.get_deployment("calc").revisions[-1].version == 1, "nothing changed"


def test_names_are_unique_across_projects(admin: Client, calc: Client) -> None:
    admin.create_project("other")
    funade.log_model(
        Arithmetic(),
        "calc",
        sample_input={"x": np.ones((1, 2))},
        client=admin,
        project="other",
        progress=False,
    )
    _refused(
        lambda: admin.create_deployment("calc", project="other"),
        ConflictError,
        "names are unique across projects",
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"replicas": 0}, "replicas", "between 1 and 32"),
        ({"runtime": {"workers": 0}}, "runtime.workers", "greater than or equal to 1"),
        ({"runtime": {"threads": 2}}, "runtime.threads", "not a field"),
        ({"runtime": {"max_batch_size": 2**21}}, "runtime.max_batch_size", "less than or equal"),
        ({"runtime": {"timeout_ms": 1e12}}, "runtime.timeout_ms", "less than or equal"),
        ({"runtime": {"max_latency_ms": 1e6}}, "runtime.max_latency_ms", "less than or equal"),
        ({"runtime": {"max_body_bytes": 2**40}}, "runtime.max_body_bytes", "less than or equal"),
        ({"policy": {"allow_cidrs": ["10.0.0.300/8"]}}, "policy.allow_cidrs", "not an address"),
        ({"policy": {"rate_limit": {"per_second": 0}}}, "policy.rate_limit.per_second", "greater"),
        ({"smoke": [{"inputs": []}]}, "smoke.0.inputs", "at least 1"),
    ],
)
def test_bad_options_are_refused_naming_the_field(
    admin: Client, calc: Client, fields: dict[str, Any], field: str, message: str
) -> None:
    exc = _refused(
        lambda: admin.create_deployment("calc", name="calc-x", **fields), InvalidInputError, message
    )
    assert exc.field == field
    assert [d.name for d in admin.list_deployments()] == ["calc"], "nothing was stored"


def test_changes_wait_for_the_rollout_in_progress(calc: Client) -> None:
    exc = _refused(
        lambda: calc.update_deployment("calc", version="2"), ConflictError, "in progress"
    )
    assert "funade rollout abort calc" in exc.fix
    _refused(lambda: calc.set_traffic("calc", {1: 100}), ConflictError, "in progress")
    _refused(lambda: calc.rollback("calc"), ConflictError, "in progress")
    _refused(lambda: calc.rollout_action("calc", "promote"), ConflictError, "can be promoted once")
    _refused(lambda: calc.rollout_action("calc", "jump"), NotFoundError, "no rollout action 'jump'")
    aborted = calc.rollout_action("calc", "abort")
    assert aborted.state == "aborted"
    _refused(lambda: calc.rollout_action("calc", "abort"), ConflictError, "no rollout in progress")
    # A policy changes in place, even with no verified revision.
    changed = calc.update_deployment("calc", policy={"public": True})
    assert changed.policy["public"] is True
    assert len(changed.revisions) == 1


def test_traffic_must_add_up_over_verified_revisions(calc: Client) -> None:
    calc.rollout_action("calc", "abort")
    exc = _refused(lambda: calc.set_traffic("calc", {1: 60}), InvalidInputError, "adding up to 100")
    assert exc.field == "traffic"
    _refused(lambda: calc.set_traffic("calc", {1: 50, 7: 50}), NotFoundError, "no revision 7")
    exc = _refused(
        lambda: calc.set_traffic("calc", {1: 100}), ConflictError, "only verified revisions"
    )
    assert exc.value == 1
    _refused(lambda: calc.set_traffic("calc", shadow=5), NotFoundError, "no revision 5")
    _refused(lambda: calc.rollback("calc"), ConflictError, "no earlier revision")
    assert calc.get_deployment("calc").traffic == {}


def test_a_deployed_version_cannot_be_deleted(calc: Client) -> None:
    _refused(lambda: calc.delete_version("calc", 1), ConflictError, "deployment 'calc' uses it")


def test_keys_see_and_change_only_what_their_scopes_allow(calc: Client, key_for: Any) -> None:
    reader = key_for(["read"])
    assert reader.get_deployment("calc").name == "calc"
    _refused(lambda: reader.delete_deployment("calc"), PermissionDeniedError, "needs 'write'")
    _refused(lambda: reader.create_deployment("calc", name="c2"), PermissionDeniedError, "write")
    calc.create_project("elsewhere")
    stranger = key_for(["write"], project="elsewhere")
    _refused(lambda: stranger.get_deployment("calc"), NotFoundError, "does not exist")
    assert stranger.list_deployments() == []


def test_unknown_deployments_and_bad_bodies(calc: Client, app_url: str, admin_key: str) -> None:
    _refused(lambda: calc.get_deployment("nope"), NotFoundError, "Deployment 'nope'")
    headers = {"Authorization": f"Bearer {admin_key}"}
    response = httpx.patch(
        f"{app_url}/api/v1/deployments/calc",
        json={"rollout": {"strategy": "canary", "steps": [50, 20, 100]}},
        headers=headers,
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "rollout.steps"
    assert "must rise strictly" in error["message"]
    assert error["value"] == [50, 20, 100]
    response = httpx.patch(
        f"{app_url}/api/v1/deployments/calc",
        json={"rollout": {"strategy": "yolo"}},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "rollout.strategy"


def test_a_null_limit_in_the_analysis_is_kept_as_no_limit(calc: Client) -> None:
    """``max_p99_ratio: null`` turns the p99 comparison off; limits not named keep their
    defaults (dropping the null brought the default ratio back)."""
    calc.rollout_action("calc", "abort")
    options = {"strategy": "canary", "steps": [50, 100], "analysis": {"max_p99_ratio": None}}
    changed = calc.update_deployment("calc", version="2", rollout=options)
    assert changed.rollout is not None
    analysis = changed.rollout.options["analysis"]
    assert analysis["max_p99_ratio"] is None
    assert analysis["max_error_rate"] == 0.01, "a limit not named keeps its default"
    assert changed.rollout.options["steps"] == [50, 100]
