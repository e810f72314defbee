"""The Kubernetes backend's planner, with plain dicts and no server: what it creates, applies
again, deletes and leaves alone, in which order, and that carrying its actions out converges."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funade.deploy.k8s.plan import (
    HASH_ANNOTATION,
    Action,
    ObjectKey,
    Verb,
    listed,
    plan,
    spec_hash,
)

OWNER = {"app.kubernetes.io/managed-by": "funade"}
NS = "models"


def labels(deployment: str, revision: int) -> dict[str, str]:
    return {
        **OWNER,
        "funade.dev/deployment": deployment,
        "funade.dev/revision": str(revision),
    }


def revision(deployment: str, number: int, image: str = "reg/churn:1") -> list[dict[str, Any]]:
    """What a revision wants: a Service and a Deployment, as the renderer makes them."""
    name = f"{deployment}-r{number}"
    meta = {"name": name, "namespace": NS, "labels": labels(deployment, number)}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": copy.deepcopy(meta),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels(deployment, number)},
                "template": {
                    "metadata": {"labels": labels(deployment, number)},
                    "spec": {"containers": [{"name": "model", "image": image}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": copy.deepcopy(meta),
            "spec": {"selector": labels(deployment, number), "ports": [{"port": 8080}]},
        },
    ]


def as_served(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as a list call returns it after a server-side apply: fields the server fills
    in, and no apiVersion or kind (list items have none)."""
    out = copy.deepcopy(body)
    out.pop("apiVersion")
    out.pop("kind")
    out["metadata"].update(uid="u-1", resourceVersion="42", managedFields=[{"manager": "funade"}])
    out["spec"]["revisionHistoryLimit"] = 10  # a default the server adds
    out["status"] = {"observedGeneration": 1}
    return out


def seen_after(actions: list[Action], seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the namespace holds after the actions are carried out (a server, in a few lines)."""
    by_key = {
        ObjectKey(o["apiVersion"].rpartition("/")[0], o["kind"], NS, o["metadata"]["name"]): o
        for o in seen
    }
    for action in actions:
        if action.verb in (Verb.CREATE, Verb.APPLY):
            assert action.body is not None
            served = as_served(action.body)
            by_key[action.key] = {
                "apiVersion": action.body["apiVersion"],
                "kind": action.body["kind"],
                **served,
            }
        elif action.verb is Verb.DELETE:
            del by_key[action.key]
    return list(by_key.values())


def verbs(actions: list[Action]) -> list[tuple[str, str, str]]:
    return [(a.verb.value, a.key.kind, a.key.name) for a in actions]


def test_an_empty_namespace_gets_each_revisions_service_then_its_deployment() -> None:
    wanted = revision("churn", 1) + revision("fraud", 3)
    actions = plan(wanted, [], owner=OWNER)
    assert verbs(actions) == [
        ("create", "Service", "churn-r1"),
        ("create", "Service", "fraud-r3"),
        ("create", "Deployment", "churn-r1"),
        ("create", "Deployment", "fraud-r3"),
    ]
    for action in actions:
        assert action.body is not None
        assert action.body["metadata"]["annotations"][HASH_ANNOTATION] == spec_hash(action.body)
    assert "annotations" not in wanted[0]["metadata"], "the wanted objects are not changed"


def test_what_was_applied_needs_nothing_however_the_server_filled_it_in() -> None:
    wanted = revision("churn", 1)
    seen = seen_after(plan(wanted, [], owner=OWNER), [])
    assert all("revisionHistoryLimit" in o["spec"] for o in seen)
    actions = plan(wanted, seen, owner=OWNER)
    assert verbs(actions) == [
        ("nothing", "Service", "churn-r1"),
        ("nothing", "Deployment", "churn-r1"),
    ]
    assert {a.reason for a in actions} == {"unchanged"}
    assert all(a.body is None for a in actions)


def test_a_changed_object_is_applied_again_and_only_it() -> None:
    seen = seen_after(plan(revision("churn", 1), [], owner=OWNER), [])
    actions = plan(revision("churn", 1, image="reg/churn:2"), seen, owner=OWNER)
    assert verbs(actions) == [
        ("nothing", "Service", "churn-r1"),
        ("apply", "Deployment", "churn-r1"),
    ]
    [_, apply] = actions
    assert apply.reason == "changed"
    assert apply.body is not None
    assert apply.body["spec"]["template"]["spec"]["containers"][0]["image"] == "reg/churn:2"


def test_one_without_a_hash_is_applied() -> None:
    """Made by hand, or by a funade before the planner: applied once, then stamped."""
    [deployment, service] = revision("churn", 1)
    seen = [{**deployment, "status": {}}, service]
    actions = plan([deployment, service], seen, owner=OWNER)
    assert {(a.verb, a.reason) for a in actions} == {(Verb.APPLY, "there without a spec hash")}


def test_a_retired_revision_is_deleted_after_the_new_one_is_made() -> None:
    seen = seen_after(plan(revision("churn", 1), [], owner=OWNER), [])
    actions = plan(revision("churn", 2), seen, owner=OWNER)
    assert verbs(actions) == [
        ("create", "Service", "churn-r2"),
        ("create", "Deployment", "churn-r2"),
        ("delete", "Deployment", "churn-r1"),
        ("delete", "Service", "churn-r1"),
    ]
    assert actions[-1].reason == "funade's, no longer wanted"


def test_what_is_not_ours_or_owned_by_another_object_is_left_alone() -> None:
    [deployment, service] = revision("gone", 1)
    theirs = copy.deepcopy(deployment)
    theirs["metadata"]["labels"] = {"app": "someone-elses"}
    other_install = copy.deepcopy(service)
    other_install["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "helm"
    replica_set = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "churn-r1-5d8f",
            "labels": labels("churn", 1),
            "ownerReferences": [{"kind": "Deployment", "name": "churn-r1"}],
        },
    }
    actions = plan([], [theirs, other_install, replica_set], owner=OWNER, namespace=NS)
    assert actions == []


def test_an_installations_own_label_keeps_two_control_planes_apart() -> None:
    mine = {**OWNER, "funade.dev/installation": "blue"}
    [deployment, service] = revision("churn", 1)
    for obj in (deployment, service):
        obj["metadata"]["labels"]["funade.dev/installation"] = "green"
    assert plan([], [deployment, service], owner=mine) == []
    assert len(plan([], [deployment, service], owner=OWNER)) == 2


def test_a_wanted_name_taken_by_another_object_is_a_conflict_not_a_takeover() -> None:
    [deployment, service] = revision("churn", 1)
    theirs = copy.deepcopy(service)
    theirs["metadata"]["labels"] = {"app": "legacy"}
    actions = plan([deployment, service], [theirs], owner=OWNER)
    assert verbs(actions) == [
        ("conflict", "Service", "churn-r1"),
        ("create", "Deployment", "churn-r1"),
    ]
    assert actions[0].body is None
    assert actions[0].reason == (
        f"Service {NS}/churn-r1 exists and is not funade's (it lacks the owner labels); rename "
        "the deployment, or delete that object if it is a leftover"
    )


def test_objects_being_deleted_are_waited_for() -> None:
    seen = seen_after(plan(revision("churn", 1), [], owner=OWNER), [])
    for obj in seen:
        obj["metadata"]["deletionTimestamp"] = "2026-12-07T14:00:00Z"
    assert {a.verb for a in plan([], seen, owner=OWNER)} == {Verb.NOTHING}
    again = plan(revision("churn", 1, image="reg/churn:2"), seen, owner=OWNER)
    assert {(a.verb, a.reason) for a in again} == {
        (Verb.NOTHING, "being deleted; created again after")
    }


def test_list_items_get_their_kind_and_a_group_names_the_object_in_any_version() -> None:
    [deployment, _] = revision("churn", 1)
    served = as_served(plan([deployment], [], owner=OWNER)[0].body or {})
    [item] = listed("apps/v1beta2", "Deployment", [served])
    assert (item["apiVersion"], item["kind"]) == ("apps/v1beta2", "Deployment")
    assert verbs(plan([deployment], [item], owner=OWNER)) == [("nothing", "Deployment", "churn-r1")]


def test_objects_without_a_namespace_live_in_the_given_one() -> None:
    [deployment, _] = revision("churn", 1)
    del deployment["metadata"]["namespace"]
    [action] = plan([deployment], [], owner=OWNER, namespace="ml")
    assert action.key == ObjectKey("apps", "Deployment", "ml", "churn-r1")
    assert str(action.key) == "Deployment ml/churn-r1"


def test_the_hash_ignores_key_order_and_itself_and_sees_any_change() -> None:
    [deployment, _] = revision("churn", 1)
    reordered = dict(reversed(list(copy.deepcopy(deployment).items())))
    assert spec_hash(reordered) == spec_hash(deployment)
    stamped = copy.deepcopy(deployment)
    stamped["metadata"]["annotations"] = {HASH_ANNOTATION: "anything"}
    assert spec_hash(stamped) == spec_hash(deployment)
    stamped["metadata"]["annotations"]["team"] = "ml"
    assert spec_hash(stamped) != spec_hash(deployment)
    changed = copy.deepcopy(deployment)
    changed["spec"]["replicas"] = 3
    assert spec_hash(changed) != spec_hash(deployment)


@pytest.mark.parametrize(
    ("wanted", "owner", "message"),
    [
        (revision("churn", 1), {}, "owner is empty: every object would count as funade's"),
        (
            [{**revision("churn", 1)[1], "metadata": {"name": "churn-r1"}}],
            OWNER,
            "wanted Service churn-r1 lacks the owner label app.kubernetes.io/managed-by=funade",
        ),
        (
            revision("churn", 1) + revision("churn", 1)[:1],
            OWNER,
            f"Deployment {NS}/churn-r1 is wanted twice",
        ),
        ([{"apiVersion": "v1", "metadata": {"name": "x"}}], OWNER, "a wanted object has no kind"),
        (
            [{"kind": "Service", "metadata": {"name": "x"}}],
            OWNER,
            "a wanted object has no apiVersion",
        ),
        ([{"apiVersion": "v1", "kind": "Service"}], OWNER, "a wanted object has no metadata.name"),
    ],
)
def test_malformed_input_is_refused_saying_what_to_fix(
    wanted: list[dict[str, Any]], owner: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        plan(wanted, [], owner=owner)


def test_list_items_passed_without_listed_are_refused_pointing_at_it() -> None:
    served = as_served(revision("churn", 1)[0])
    with pytest.raises(ValueError, match=r"a seen object has no apiVersion .*listed\(\)"):
        plan([], [served], owner=OWNER)


def test_seen_objects_of_any_shape_neither_crash_the_planner_nor_count_as_ours() -> None:
    """A list call returns what anyone with access to the namespace wrote: labels and
    annotations of the wrong type, a hash that is not a hash. Such an object is not ours (so it
    is not deleted), and a forged hash makes only that object skip a re-apply."""
    [deployment, service] = revision("churn", 1)
    garbage = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": ["x"]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "labels": None}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": "funade"}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "d", "labels": dict(OWNER), "annotations": ["not", "a", "map"]},
        },
    ]
    stale = copy.deepcopy(service)
    stale["metadata"]["annotations"] = 7
    actions = plan([deployment, service], [*garbage, stale], owner=OWNER, namespace=NS)
    assert verbs(actions) == [
        ("apply", "Service", "churn-r1"),
        ("create", "Deployment", "churn-r1"),
        ("delete", "ConfigMap", "d"),
    ]
    assert actions[0].reason == "there without a spec hash"
    assert actions[0].body is not None
    assert actions[0].body["metadata"]["annotations"] == {HASH_ANNOTATION: spec_hash(service)}
    with pytest.raises(ValueError, match=r"^a seen object has no metadata\.name"):
        plan([], [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"}], owner=OWNER)


names = st.sampled_from(["churn", "fraud", "rank"])
revisions = st.lists(st.tuples(names, st.integers(1, 3), st.sampled_from(["a", "b"])), max_size=4)


@settings(max_examples=60, deadline=None)
@given(before=revisions, after=revisions, foreign=st.lists(names, max_size=2, unique=True))
def test_carrying_out_a_plan_converges_and_never_touches_what_is_not_ours(
    before: list[tuple[str, int, str]],
    after: list[tuple[str, int, str]],
    foreign: list[str],
) -> None:
    def wants(spec: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
        unique = {(d, n): image for d, n, image in spec}
        return [o for (d, n), image in unique.items() for o in revision(d, n, f"reg/{image}")]

    others = [
        {**o, "metadata": {**o["metadata"], "name": f"{name}-legacy", "labels": {"app": name}}}
        for name in foreign
        for o in revision(name, 9)
    ]
    seen = seen_after(plan(wants(before), others, owner=OWNER), others)
    actions = plan(wants(after), seen, owner=OWNER)
    assert not any(a.key.name.endswith("-legacy") for a in actions)
    seen = seen_after(actions, seen)
    assert {a.verb for a in plan(wants(after), seen, owner=OWNER)} <= {Verb.NOTHING}
    ours = {
        o["metadata"]["name"]
        for o in seen
        if o["metadata"]["labels"] == o["metadata"]["labels"] | OWNER
    }
    assert ours == {o["metadata"]["name"] for o in wants(after)}
    assert [o for o in seen if o["metadata"]["name"].endswith("-legacy")] == others
