"""Loading code is a permission (issue 17, finding 1): a project's write key deployed a pickle, a
Python class, or a package with a PYTHONPATH in its runtime environment, and so ran code on the
platform. Now such a deployment needs the deploy-code scope or a project that trusts code, a
deployment's environment cannot name a loader variable, and schedules are gated the same way."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest
from sqlalchemy import select

import funade
from funade.api.schemas import ScheduleIn
from funade.client import Client
from funade.errors import InvalidInputError, PermissionDeniedError
from funade.store import Database
from funade.store.schema import ModelVersion
from tests.serving.models import Arithmetic

KeyFor = Callable[..., Client]
SAMPLE = {"x": np.array([[1.0, 2.0]])}


def _register(client: Client, name: str = "calc") -> int:
    return funade.log_model(
        Arithmetic(), name, sample_input=SAMPLE, client=client, progress=False
    ).version


def test_a_write_key_cannot_deploy_a_model_whose_loading_runs_code(
    admin: Client, key_for: KeyFor, app_url: str
) -> None:
    writer = key_for(["read", "write"])
    _register(writer)  # registering is fine: nothing is loaded on the control plane
    with pytest.raises(PermissionDeniedError, match="runs code when it is loaded") as info:
        writer.create_deployment("calc")
    error = info.value
    assert error.field == "scope"
    assert "'deploy-code' scope" in error.message
    assert "trust_code is off" in error.message
    assert "--scope deploy-code" in (error.fix or "")
    assert "funade projects update default --trust-code" in (error.fix or "")
    assert writer.list_deployments() == [], "nothing was stored"
    response = httpx.post(
        f"{app_url}/api/v1/deployments",
        json={"model": "calc"},
        headers={"authorization": writer._http.headers["authorization"]},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_deploy_code_scope_or_a_trusting_project_allows_it(admin: Client, key_for: KeyFor) -> None:
    coder = key_for(["read", "write", "deploy-code"])
    _register(coder)
    assert coder.create_deployment("calc").name == "calc"
    writer = key_for(["read", "write"])
    _register(writer, "calc2")
    with pytest.raises(PermissionDeniedError):
        writer.create_deployment("calc2")
    assert admin.update_project("default", trust_code=True).trust_code is True
    assert writer.create_deployment("calc2").name == "calc2"
    [event] = admin.audit(action="project.update").items
    assert event.details == {"trust_code": True}
    with pytest.raises(PermissionDeniedError, match="needs 'admin'"):
        writer.update_project("default", trust_code=False)


def test_a_new_revision_of_code_is_gated_too(admin: Client, key_for: KeyFor) -> None:
    _register(admin)
    admin.create_deployment("calc")
    admin.rollout_action("calc", "abort")  # no controller here: it would wait forever
    writer = key_for(["read", "write"])
    _register(writer)  # version 2
    with pytest.raises(PermissionDeniedError, match="version 2 \\(python_class\\)"):
        writer.update_deployment("calc", version="2")
    assert [r.number for r in admin.get_deployment("calc").revisions] == [1]


@pytest.mark.parametrize(
    "name", ["PYTHONPATH", "PYTHONSTARTUP", "LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "FUNADE_X"]
)
def test_a_deployments_environment_cannot_load_other_code(
    admin: Client, app_url: str, admin_key: str, name: str
) -> None:
    _register(admin)
    response = httpx.post(
        f"{app_url}/api/v1/deployments",
        json={"model": "calc", "runtime": {"env": {name: "/srv/evil"}}},
        headers={"authorization": f"Bearer {admin_key}"},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == "runtime.env"
    assert name in error["message"]
    assert admin.list_deployments() == []


def test_a_harmless_environment_is_kept(admin: Client) -> None:
    from funade.sandbox.env import check_runtime_env

    assert check_runtime_env({"OMP_NUM_THREADS": "2", "MODEL_MODE": "fast"}) == {
        "OMP_NUM_THREADS": "2",
        "MODEL_MODE": "fast",
    }
    with pytest.raises(InvalidInputError, match="may not set LD_PRELOAD") as info:
        check_runtime_env({"LD_PRELOAD": "x.so"})
    assert info.value.field == "runtime.env.LD_PRELOAD"


def test_scheduling_code_needs_the_same_permission(admin: Client, key_for: KeyFor) -> None:
    body = ScheduleIn(name="nightly", source="/srv/flows/train.py:training", cron="0 3 * * *")
    writer = key_for(["read", "write"])
    with pytest.raises(PermissionDeniedError, match="A pipeline started on the control plane"):
        writer.create_schedule(body)
    coder = key_for(["read", "write", "deploy-code"])
    assert coder.create_schedule(body).name == "nightly"
    reader = key_for(["read"])
    with pytest.raises(PermissionDeniedError, match="needs 'write'"):
        reader.create_schedule(body.model_copy(update={"name": "other"}))


def test_skops_packages_deploy_with_write_only_on_the_explicit_list(
    admin: Client, key_for: KeyFor
) -> None:
    """A skops file loads trusting the types it recorded; only those on skops's own default
    list (estimators, ufuncs, dtypes) count as data. Tree internals, which skops leaves off
    because it cannot check their content, count as code."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.2], [0.9, 0.9]])
    y = np.array([0, 1, 0, 1])
    writer = key_for(["read", "write"])
    for name, model in (
        ("linear", LogisticRegression().fit(x, y)),
        ("forest", RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y)),
    ):
        funade.log_model(model, name, sample_input=x, client=writer, progress=False)
    assert writer.create_deployment("linear").name == "linear"
    with pytest.raises(PermissionDeniedError, match="Model 'forest' version 1 \\(sklearn\\)"):
        writer.create_deployment("forest")
    assert admin.create_deployment("forest").name == "forest", "admin has deploy-code"


def test_whether_a_version_runs_code_is_decided_at_registration(
    admin: Client, key_for: KeyFor, database: Database
) -> None:
    """Registration records the decision (for a skops package it imports scikit-learn, which a
    deploy call then need not do); a version registered before it was recorded (NULL) is
    decided when it is deployed."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.2], [0.9, 0.9]])
    y = np.array([0, 1, 0, 1])
    writer = key_for(["read", "write"])
    for name, model in (
        ("linear", LogisticRegression().fit(x, y)),
        ("forest", RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y)),
        ("stored", LogisticRegression().fit(x, y)),
    ):
        funade.log_model(model, name, sample_input=x, client=writer, progress=False)
    _register(writer)
    with database.session() as session:
        recorded = {v.model.name: v.runs_code for v in session.scalars(select(ModelVersion))}
        assert recorded == {"linear": False, "forest": True, "stored": False, "calc": True}
        for version in session.scalars(select(ModelVersion)):
            version.runs_code = {"stored": True}.get(version.model.name)  # the rest: NULL
    assert writer.create_deployment("linear").name == "linear"
    for name in ("forest", "calc"):
        with pytest.raises(PermissionDeniedError, match="runs code when it is loaded"):
            writer.create_deployment(name)
    with pytest.raises(PermissionDeniedError, match="Model 'stored' version 1"):
        writer.create_deployment("stored")  # the recorded decision is the one used
