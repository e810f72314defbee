"""Deployments end to end through the REST API and a running controller with real replicas:
create → verified → traffic; new revisions by blue/green and canary; verification failures
(wrong outputs, a crash on load) leave traffic where it was; rollback; delete."""

from __future__ import annotations

from contextlib import closing

import pytest

from funade.deploy.replicaurl import ReplicaHTTP
from funade.errors import ConflictError
from tests.deploy.conftest import Plane, until
from tests.serving.models import Arithmetic, CrashOnLoad, Drifting


def infer(plane: Plane, url: str, name: str = "calc") -> dict[str, list[float]]:
    """A replica's answer, asked as the gateway asks (with the replica's token)."""
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}
    headers = {"authorization": f"Bearer {plane.replica_token(url)}"}
    with closing(ReplicaHTTP(10)) as http:
        response = http.post(url, f"/v2/models/{name}/infer", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


def ready_urls(plane: Plane, name: str, revision: int) -> list[str]:
    deployment = plane.client.get_deployment(name)
    return [r.url for r in deployment.replicas if r.revision == revision and r.state == "ready"]


def test_a_deployment_is_verified_then_takes_traffic(calc: Plane) -> None:
    deployment = calc.client.get_deployment("calc")
    assert deployment.traffic == {1: 100}
    assert deployment.controller is True
    [revision] = deployment.revisions
    assert (revision.model, revision.version, revision.status) == ("calc", 1, "verified")
    rollout = deployment.rollout
    assert rollout is not None
    assert rollout.strategy == "direct"
    assert [h["event"] for h in rollout.history] == [
        "started: direct to revision 1",
        "verified; all traffic moved",
    ]
    [url] = ready_urls(calc, "calc", 1)
    assert infer(calc, url)["double"] == [2.0, 4.0]
    assert url.startswith("unix:/tmp/funade-"), "replicas listen on Unix sockets by default"
    with closing(ReplicaHTTP(10)) as http:
        anonymous = http.post(url, "/v2/models/calc/infer", json={"inputs": []})
    assert anonymous.status_code == 401, anonymous.text  # only the gateway may call it
    actions = [e.action for e in calc.client.audit(action="deployment").items]
    assert actions == ["deployment.create"]
    assert [d.name for d in calc.client.list_deployments()] == ["calc"]


def test_blue_green_switches_keeps_the_old_revision_warm_and_rolls_back(calc: Plane) -> None:
    calc.log(Arithmetic())
    calc.client.update_deployment(
        "calc", version="2", rollout={"strategy": "bluegreen", "warm_seconds": 60}
    )
    calc.wait_rollout("calc", ("succeeded",))
    deployment = calc.client.get_deployment("calc")
    assert deployment.traffic == {2: 100}
    assert [r.version for r in deployment.revisions] == [1, 2]
    assert deployment.revisions[0].warm_until is not None
    until(lambda: ready_urls(calc, "calc", 1), 10, "revision 1 to stay warm")

    rollout = calc.client.rollback("calc")
    assert (rollout.revision, rollout.state) == (1, "verifying")
    calc.wait_rollout("calc", ("succeeded",), timeout=10)
    assert calc.client.get_deployment("calc").traffic == {1: 100}
    events = [h["event"] for h in calc.client.list_rollouts("calc")[0].history]
    assert "rollback from revision 2" in events


def test_wrong_outputs_fail_verification_and_leave_traffic(calc: Plane) -> None:
    calc.log(Drifting())
    calc.client.update_deployment(
        "calc",
        version="2",
        runtime={"env": {"FAKE_MODEL_DRIFT": "1"}},
        rollout={"strategy": "bluegreen"},
    )
    rollout = calc.wait_rollout("calc", ("failed",))
    assert rollout.reason.startswith("verification failed: golden example 1: output 'double' ")
    assert "differs in 4 of 4 values; first at [0, 0]: 3.0, expected 2.0" in rollout.reason
    deployment = calc.client.get_deployment("calc")
    assert deployment.traffic == {1: 100}
    assert deployment.revisions[1].status == "failed"
    assert deployment.revisions[1].detail["reason"] == rollout.reason
    until(lambda: not ready_urls(calc, "calc", 2), 15, "revision 2 to be stopped")


def test_a_version_that_crashes_on_load_fails_its_rollout(calc: Plane) -> None:
    calc.log(CrashOnLoad())
    calc.client.update_deployment(
        "calc", version="2", runtime={"env": {"FAKE_MODEL_CRASH": "1"}}, rollout={}
    )
    rollout = calc.wait_rollout("calc", ("failed",), timeout=120)
    assert "crashed 3 times in a row" in rollout.reason
    assert "FAKE_MODEL_CRASH is set" in rollout.reason
    assert calc.client.get_deployment("calc").traffic == {1: 100}


def test_canary_steps_to_full_traffic(calc: Plane) -> None:
    calc.log(Arithmetic())
    calc.client.update_deployment(
        "calc", version="2", rollout={"strategy": "canary", "steps": [30, 100], "pause_seconds": 1}
    )
    calc.wait_rollout("calc", ("progressing",))
    assert calc.client.get_deployment("calc").traffic == {1: 70, 2: 30}
    rollout = calc.wait_rollout("calc", ("succeeded",))
    assert [h["event"] for h in rollout.history][1:] == [
        "verified; canary at 30%",
        "promoted to 100%",
    ]
    assert calc.client.get_deployment("calc").traffic == {2: 100}


def test_a_canary_is_aborted_or_promoted_by_hand(calc: Plane) -> None:
    calc.log(Arithmetic())
    options = {"strategy": "canary", "steps": [20, 100], "pause_seconds": 3600}
    calc.client.update_deployment("calc", version="2", rollout=options)
    calc.wait_rollout("calc", ("progressing",))
    aborted = calc.client.rollout_action("calc", "abort")
    assert aborted.state == "aborted"
    assert aborted.reason == "aborted by local-admin"
    deployment = calc.client.get_deployment("calc")
    assert deployment.traffic == {1: 100}
    assert deployment.revisions[1].status == "verified", "an abort is no verdict on it"

    calc.client.create_deployment("calc", name="calc-b")  # a rollout of another deployment
    calc.client.update_deployment("calc", version="2", rollout=options)
    calc.wait_rollout("calc", ("progressing",))
    promoted = calc.client.rollout_action("calc", "promote")
    assert promoted.state == "succeeded"
    assert calc.client.get_deployment("calc").traffic == {3: 100}
    # Numbered within each deployment, though their ids are global.
    assert [r.number for r in calc.client.list_rollouts("calc")] == [3, 2, 1]
    [other] = calc.client.list_rollouts("calc-b")
    assert (other.number, other.id) == (1, aborted.id + 1)
    assert promoted.id == aborted.id + 2
    assert [e.action for e in calc.client.audit(action="rollout").items] == [
        "rollout.promote",
        "rollout.abort",
    ]


def test_traffic_is_split_by_hand_between_verified_revisions(calc: Plane) -> None:
    calc.log(Arithmetic())
    calc.client.update_deployment("calc", version="2", rollout={"strategy": "bluegreen"})
    calc.wait_rollout("calc", ("succeeded",))
    deployment = calc.client.set_traffic("calc", {1: 90, 2: 10})
    assert deployment.traffic == {1: 90, 2: 10}
    assert calc.client.set_traffic("calc", shadow=1).shadow == 1
    assert calc.client.set_traffic("calc", clear_shadow=True).shadow is None
    audit = calc.client.audit(action="deployment.traffic").items
    assert audit[-1].details == {"weights": {"1": 90, "2": 10}, "shadow": None}


def test_delete_drains_then_removes_the_deployment(calc: Plane) -> None:
    deleted = calc.client.delete_deployment("calc")
    assert deleted.state == "deleting"
    with pytest.raises(ConflictError, match="is being deleted"):
        calc.client.update_deployment("calc", replicas=2)

    def gone() -> bool:
        try:
            calc.client.get_deployment("calc")
        except Exception as exc:
            return "does not exist" in str(exc)
        return False

    until(gone, 30, "the deployment to be removed")
    until(lambda: not list((calc.home / "replicas").glob("*.json")), 30, "replicas stopped")
    # The name can be used anew.
    calc.client.create_deployment("calc")
    calc.wait_rollout("calc", ("succeeded",))


def test_smoke_requests_with_tolerances_are_part_of_verification(plane: Plane) -> None:
    plane.log(Arithmetic())
    x = [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]
    close = {"inputs": x, "outputs": [{"name": "double", "datatype": "FP64", "shape": [1, 2],
                                       "data": [2.001, 4.0]}], "atol": 0.01}  # fmt: skip
    plane.client.create_deployment("calc", smoke=[close])
    assert plane.wait_rollout("calc", ("succeeded", "failed")).state == "succeeded"
    wrong = {**close, "atol": 0.0}
    plane.client.update_deployment("calc", smoke=[close, wrong], rollout={})
    rollout = plane.wait_rollout("calc", ("failed",))
    assert rollout.reason.startswith(
        "verification failed: smoke request 2: output 'double' differs in 1 of 2 values"
    )
    assert plane.client.get_deployment("calc").traffic == {1: 100}
