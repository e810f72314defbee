"""`funade manifests` with hostile names and options: every name the registry accepts becomes
valid, distinct Kubernetes names and labels; names a person gives, paths on the node, URLs and
images that could escape their field or carry a credential are refused naming the option."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from funade.deploy.k8s.render import (
    ModelVersion,
    RenderOptions,
    Target,
    check_options,
    parse_model_cache,
    parse_toleration,
    render,
)
from funade.errors import InvalidInputError

DIGEST = "sha256:" + "ab" * 32
# Kubernetes' own formats (k8s.io/apimachinery/pkg/util/validation/validation.go), written out
# here rather than taken from funade.deploy.k8s.names, which they check.
DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
# What funade.names accepts as a model's name (from_regex makes short ones: long ones too),
_MODEL = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?"
MODEL_NAMES = st.one_of(
    st.from_regex(_MODEL, fullmatch=True),
    st.text("aZ9._-", min_size=40, max_size=128).filter(lambda t: re.fullmatch(_MODEL, t)),
).filter(lambda name: ".." not in name)  # nor '..' (funade.names)


def names_in(objects: list[dict[str, Any]]) -> list[str]:
    """Every name that Kubernetes checks as a DNS-1035 label: objects', the Knative revision's,
    the traffic tags' routes (``<tag>-<service>``)."""
    names = []
    for obj in objects:
        names.append(obj["metadata"]["name"])
        if obj["kind"] == "Service" and obj["apiVersion"].startswith("serving.knative"):
            names.append(obj["spec"]["template"]["metadata"]["name"])
            for target in obj["spec"]["traffic"]:
                names += [target["revisionName"], f"{target['tag']}-{obj['metadata']['name']}"]
        if obj["kind"] == "InferenceService":  # KServe's Knative revision for it
            names.append(f"{obj['metadata']['name']}-predictor-00001")
    return names


def labels_in(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key in ("labels", "matchLabels", "selector", "nodeSelector"):
            value = node.get(key)
            if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
                found += list(value.values())
        for value in node.values():
            found += labels_in(value)
    elif isinstance(node, list):
        for value in node:
            found += labels_in(value)
    return found


@settings(max_examples=150, deadline=None)
@given(model=MODEL_NAMES, target=st.sampled_from(list(Target)), revision=st.integers(1, 99999))
def test_every_model_name_becomes_valid_kubernetes_names_and_labels(
    model: str, target: Target, revision: int
) -> None:
    options = RenderOptions(target=target, revision=revision)
    objects = render(ModelVersion(model, 1, DIGEST), options)
    for name in names_in(objects):
        assert DNS1035.fullmatch(name), name
        assert len(name) <= 63, name
    for value in labels_in(objects):
        assert LABEL_VALUE.fullmatch(value), value
        assert len(value) <= 63, value
    assert objects[0]["metadata"]["annotations"]["funade.dev/model"] == model


def test_names_that_differ_only_in_what_kubernetes_refuses_stay_distinct() -> None:
    models = ["churn-v2", "churn.v2", "churn_v2", "Churn-v2", "churn--v2", "x" * 128, "x" * 127]
    names = {
        render(ModelVersion(m, 1, DIGEST), RenderOptions())[0]["metadata"]["name"] for m in models
    }
    assert len(names) == len(models)


def test_a_hostile_commit_in_the_lineage_stays_one_annotation() -> None:
    """The git commit comes from the registering client: YAML written by safe_dump keeps it a
    string, whatever it holds."""
    commit = "4a1c9e0\n---\napiVersion: v1\nkind: Secret\n"
    (deployment, _service) = render(
        ModelVersion("churn", 1, DIGEST, git_commit=commit), RenderOptions()
    )
    documents = list(yaml.safe_load_all(yaml.safe_dump(deployment, sort_keys=False)))
    assert len(documents) == 1
    assert documents[0]["metadata"]["annotations"]["funade.dev/git-commit"] == commit


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"deployment": "../etc"}, "--name"),
    ({"deployment": "churn\n"}, "--name"),
    ({"deployment": "churn;rm -rf /"}, "--name"),
    ({"deployment": "a" * 53}, "--name"),
    ({"namespace": "kube-system/"}, "--namespace"),
    ({"namespace": "default\nkind: Secret"}, "--namespace"),
    ({"credential_secret": "x/../admin"}, "--credential-secret"),
    ({"image_pull_secrets": ["regcred\n"]}, "--image-pull-secret"),
    ({"node_selector": {"gpu": "l4\nkind: Secret"}}, "--node-selector"),
    ({"node_selector": {"x/y/z": "1"}}, "--node-selector"),
    ({"image": "ghcr.io/a/b:1\n  command: [sh]"}, "--image"),
    ({"image": "ghcr.io/a/b:1 --privileged"}, "--image"),
    ({"registry_url": "http://admin:fnd_secret@funade:8000"}, "--registry-url"),
    ({"registry_url": "http://funade:8000/?x=\n"}, "--registry-url"),
    ({"target": Target.KNATIVE, "host": "churn.example.com\n"}, "--host"),
]


@pytest.mark.parametrize(("options", "option"), HOSTILE, ids=[repr(h[0]) for h in HOSTILE])
def test_a_hostile_option_is_refused_naming_it(options: dict[str, Any], option: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_options(RenderOptions(**options))
    assert caught.value.field == option


@pytest.mark.parametrize(
    "text",
    [
        "hostpath:/",
        "hostpath:relative/dir",
        "hostpath:/var/cache/../../etc",
        "hostpath:/etc",
        "hostpath:/var/lib/kubelet/pods",
        "hostpath:/proc/1/root",
        "hostpath:/var/run/docker.sock",
        "hostpath:/data\n",
        "pvc:../claim",
        "nfs:server:/export",
    ],
)
def test_a_model_cache_outside_a_directory_of_its_own_is_refused(text: str) -> None:
    with pytest.raises(
        InvalidInputError, match=r"is not a (model cache|valid Kubernetes claim)"
    ) as caught:
        parse_model_cache(text)
    assert caught.value.field == "--model-cache"


def test_each_pod_sees_only_its_own_digests_cache() -> None:
    """Replicas of every project may share a node's cache: each mounts its digest's directory
    (subPath), not the cache, so it neither reads nor replaces another version's package."""
    options = RenderOptions(model_cache=parse_model_cache("hostpath:/var/cache/funade"))
    (container,) = render(ModelVersion("churn", 1, DIGEST), options)[0]["spec"]["template"]["spec"][
        "containers"
    ]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "model-cache"]
    assert mount["subPath"] == "sha256-" + "ab" * 32


def test_a_hostile_toleration_is_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_toleration("gpu\nkind: Secret:NoSchedule")
    assert caught.value.field == "--toleration"
