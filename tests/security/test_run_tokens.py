"""Pipeline runs report with their own token, and the step cache cannot be poisoned (issue 17,
finding 2): a write key once sent a run event with ``cache_write: true`` and a cache key seen in
another run, pointing at a pickle it uploaded, and the next run unpickled it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from funade.api.schemas import RunEventsIn, RunIn, RunOut, RunUpdate, StepRecord
from funade.client import Client
from funade.errors import AuthenticationError, PermissionDeniedError

KeyFor = Callable[..., Client]
SPEC: dict[str, Any] = {"name": "p", "nodes": [{"id": "train", "function": "flows:train"}]}


def _run(client: Client, spec: dict[str, Any] | None = None, project: str | None = None) -> RunOut:
    run = client.create_run(RunIn(pipeline="p", spec=spec or SPEC), project=project)
    assert run.token is not None
    return run


def _success(key: str, outputs: dict[str, Any], instance: str = "train") -> RunEventsIn:
    return RunEventsIn(
        steps=[
            StepRecord(
                instance=instance,
                node=instance.split("[")[0],
                state="succeeded",
                cache_key=key,
                cache_write=True,
                outputs=outputs,
            )
        ]
    )


POISON = {"model": {"digest": "sha256:" + "b" * 64, "kind": "pickle", "inline": False}}


def test_a_write_key_cannot_write_another_runs_events_or_the_cache(
    admin: Client, key_for: KeyFor, app_url: str
) -> None:
    """The attack as found: a write key posts a success with cache_write for a cache key seen
    in another run, pointing at a pickle of its own."""
    victim = _run(admin)
    assert victim.token is not None
    with admin.with_key(victim.token) as runner:
        runner.report_run(victim.id, _success("k-victim", {"model": {"value": 1}}))
    writer = key_for(["read", "write"])
    with pytest.raises(PermissionDeniedError, match="Only a run's own token may report it") as info:
        writer.report_run(victim.id, _success("k-victim", POISON))
    assert info.value.field == "authorization"
    response = httpx.post(
        f"{app_url}/api/v1/runs/{victim.id}/events",
        json=_success("k-victim", POISON).model_dump(mode="json"),
        headers={"authorization": writer._http.headers["authorization"]},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    entry = admin.cache_lookup("k-victim")
    assert entry is not None
    assert entry.outputs == {"model": {"value": 1}}, "the cache entry is untouched"


def test_a_run_token_reports_only_its_own_run(admin: Client) -> None:
    mine, other = _run(admin), _run(admin)
    assert mine.token is not None
    with admin.with_key(mine.token) as runner:
        with pytest.raises(PermissionDeniedError, match=f"may report only run {mine.id}, not run"):
            runner.report_run(other.id, _success("k", POISON))
        assert admin.get_run(other.id).steps == []


def test_a_run_token_caches_only_steps_of_its_own_pipeline(admin: Client) -> None:
    run = _run(admin)
    assert run.token is not None
    with admin.with_key(run.token) as runner:
        with pytest.raises(PermissionDeniedError, match="'evil' is not a step of run") as info:
            runner.report_run(run.id, _success("k", POISON, instance="evil"))
        assert info.value.field == "steps[].instance"
        with pytest.raises(PermissionDeniedError, match="is not a step of run"):
            runner.report_run(run.id, _success("k", POISON, instance="train[x]"))
    assert admin.cache_lookup("k") is None
    assert admin.get_run(run.id).steps == [], "the whole report was refused"


def test_a_run_token_dies_with_its_run_and_with_a_new_attempt(admin: Client) -> None:
    run = _run(admin)
    assert run.token is not None
    with admin.with_key(run.token) as runner:
        answer = runner.report_run(run.id, RunEventsIn(run=RunUpdate(state="failed", reason="x")))
        assert answer.run is not None
        assert answer.run.state == "failed", "the report that ends the run returns it"
        with pytest.raises(AuthenticationError, match="was revoked"):
            runner.report_run(run.id, _success("k", POISON))
        with pytest.raises(AuthenticationError, match="was revoked"):
            runner.get_run(run.id)


def test_a_run_token_is_no_key_of_its_starter(admin: Client, app_url: str) -> None:
    """It reads its project, uploads outputs and reports its run; nothing else."""
    run = _run(admin)
    assert run.token is not None
    headers = {"authorization": f"Bearer {run.token}"}
    with httpx.Client(base_url=app_url, headers=headers) as http:
        me = http.get("/api/v1/whoami").json()
        assert (me["name"], me["scopes"], me["project"]) == (f"run {run.id}", ["run"], "default")
        for method, path, body in (
            ("POST", "/api/v1/keys", {"name": "x", "scopes": ["admin"]}),
            ("POST", "/api/v1/projects", {"name": "mine"}),
            ("POST", "/api/v1/projects/default/models", {"name": "churn"}),
            ("POST", "/api/v1/projects/default/runs", {"pipeline": "p", "spec": SPEC}),
            ("POST", f"/api/v1/runs/{run.id}/cancel", None),
            ("POST", "/api/v1/deployments", {"model": "churn"}),
            ("GET", "/api/v1/keys", None),
            ("GET", "/api/v1/audit", None),
        ):
            response = http.request(method, path, json=body)
            assert response.status_code in (403, 404), (method, path, response.text)
        assert http.get(f"/api/v1/runs/{run.id}").status_code == 200


def test_pipeline_permissions_are_capped_by_the_starters_key(
    admin: Client, key_for: KeyFor, app_url: str
) -> None:
    spec = {**SPEC, "permissions": ["register:churn", "deploy:churn"]}
    reader = key_for(["read"])
    with pytest.raises(PermissionDeniedError, match="needs 'write'"):
        reader.create_run(RunIn(pipeline="p", spec=spec))
    writer = key_for(["read", "write"])
    run = _run(writer, spec)  # a write key may give register and deploy in its project
    assert run.token is not None
    coded = {**SPEC, "permissions": ["deploy-code"]}
    with pytest.raises(PermissionDeniedError, match="asks for permission 'deploy-code'") as info:
        writer.create_run(RunIn(pipeline="p", spec=coded))
    assert (info.value.field, info.value.value) == ("permissions", "deploy-code")
    with admin.with_key(run.token) as runner:
        assert runner.whoami().scopes == ["run"]
    headers = {"authorization": f"Bearer {run.token}"}
    with httpx.Client(base_url=app_url, headers=headers) as http:
        made = http.post("/api/v1/projects/default/models", json={"name": "churn"})
        assert made.status_code == 201, made.text  # register:churn lets the run make its model
        refused = http.post("/api/v1/projects/default/models", json={"name": "other"})
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert "may not register model 'other'" in error["message"]
        assert (error["field"], error["value"]) == ("permissions", "register:other")
        assert "@funade.pipeline(permissions=['register:other'])" in error["fix"]


def test_bad_permissions_are_refused_where_the_pipeline_is_defined() -> None:
    import funade
    from funade.errors import InvalidInputError

    def flow() -> None:
        pass

    with pytest.raises(InvalidInputError, match="'admin' is not a pipeline permission") as info:
        funade.pipeline(permissions=["admin"])(flow)
    assert "register:<model>" in (info.value.fix or "")
    with pytest.raises(InvalidInputError, match=r"Model name '\.\./x' is not allowed"):
        funade.pipeline(permissions=["deploy:../x"])(flow)
    made = funade.pipeline(permissions=["register:churn", "register:churn"])(flow)
    assert made.permissions == ["register:churn"]


def test_a_less_trusted_runs_cache_entry_never_feeds_a_more_trusted_run(admin: Client) -> None:
    """A write key's own run (no permissions) writes an entry; a run that may deploy does not
    reuse it (its steps would load what the less trusted run stored), and the entry a trusted
    run writes is not downgraded by a later less trusted one."""
    plain = _run(admin)
    trusted_spec = {**SPEC, "permissions": ["deploy:churn"]}
    trusted = _run(admin, trusted_spec)
    assert plain.token is not None
    assert trusted.token is not None
    with admin.with_key(plain.token) as runner:
        runner.report_run(plain.id, _success("k1", POISON))
        assert runner.cache_lookup("k1") is not None, "an equal run reuses it"
    with admin.with_key(trusted.token) as runner:
        assert runner.cache_lookup("k1") is None
        assert runner.cache_lookup_many(["k1"]) == {}
        runner.report_run(trusted.id, _success("k2", {"model": {"value": "good"}}))
    later = _run(admin)
    assert later.token is not None
    with admin.with_key(later.token) as runner:
        runner.report_run(later.id, _success("k2", POISON))
        entry = runner.cache_lookup("k2")
        assert entry is not None
        assert entry.run_id == trusted.id, "the trusted entry was not replaced"
