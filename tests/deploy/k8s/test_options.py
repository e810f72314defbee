"""RenderOptions checked: every wrong value refused naming its option, with the fix."""

from __future__ import annotations

from typing import Any

import pytest

from funade.deploy.k8s.options import (
    ModelVersion,
    RenderOptions,
    Target,
    check_options,
    parse_toleration,
)
from funade.deploy.k8s.render import render
from funade.errors import InvalidInputError

BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"cpu": "lots"}, "--cpu", "is not a CPU quantity"),
    ({"memory": "4 GB"}, "--memory", "is not a memory quantity"),
    ({"gpus": -1}, "--gpus", "is negative"),
    ({"workers": 0}, "--workers", "is out of range"),
    ({"max_batch_size": 0}, "--max-batch-size", "is below 1"),
    ({"replicas": -1}, "--replicas", "is negative"),
    ({"revision": 0}, "--revision", "is not a revision number"),
    ({"ready_timeout_seconds": 0}, "--ready-timeout", "is out of range"),
    ({"min_replicas": 2}, "--max-replicas", "is missing"),
    ({"max_replicas": 4}, "--cpu", "is missing"),
    ({"max_replicas": 1, "min_replicas": 3, "cpu": "1"}, "--max-replicas", "below"),
    ({"target_cpu": 150, "max_replicas": 3, "cpu": "1"}, "--target-cpu", "not a percentage"),
    ({"canary_weight": 10}, "--canary-weight", "applies to --target knative or kserve"),
    (
        {"target": Target.KNATIVE, "canary_weight": 10},
        "--canary-weight",
        "needs --stable-revision",
    ),
    (
        {"target": Target.KSERVE, "canary_weight": 10, "stable_revision": 1, "revision": 2},
        "--stable-revision",
        "applies to --target knative",
    ),
    (
        {"target": Target.KNATIVE, "canary_weight": 10, "stable_revision": 5, "revision": 2},
        "--stable-revision",
        "a revision below --revision",
    ),
    ({"target": Target.KSERVE, "canary_weight": 101}, "--canary-weight", "is not a percentage"),
    ({"namespace": "Models"}, "--namespace", "is not a valid Kubernetes namespace"),
    ({"image": "GHCR.io/Acme"}, "--image", "is not an image name"),
    ({"node_selector": {"gpu": "a b"}}, "--node-selector", "is not a valid Kubernetes label"),
    ({"image_pull_secrets": ["Reg_Cred"]}, "--image-pull-secret", "is not a valid Kubernetes"),
    ({"credential_secret": "-x"}, "--credential-secret", "is not a valid Kubernetes"),
    ({"registry_url": "ftp://x"}, "--registry-url", "is not a control plane URL"),
    ({"target": Target.KNATIVE, "host": "a b"}, "--host", "is not a host name"),
    ({"target": Target.KNATIVE, "istio_gateway": "a/b/c"}, "--istio-gateway", "is not a gateway"),
    ({"deployment": "Churn"}, "--name", "is not a valid Kubernetes name"),
]


@pytest.mark.parametrize(("options", "option", "message"), BAD, ids=[b[1] for b in BAD])
def test_a_bad_option_is_refused_naming_it(
    options: dict[str, Any], option: str, message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_options(RenderOptions(**options))
    assert caught.value.field == option
    assert message in str(caught.value)
    assert str(caught.value).startswith(option)
    assert caught.value.fix


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpu", "is not a toleration"),
        ("gpu:Sometimes", "is not a toleration"),
        ("bad key:NoSchedule", "label key"),
        ("gpu=a b:NoExecute", "label value"),
    ],
)
def test_a_bad_toleration_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        parse_toleration(text)
    assert caught.value.field == "--toleration"


def test_a_toleration_with_a_value() -> None:
    assert parse_toleration("pool=gpu:NoExecute").to_dict() == {
        "key": "pool",
        "operator": "Equal",
        "value": "gpu",
        "effect": "NoExecute",
    }


def test_a_bad_digest_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="is not a package digest"):
        render(ModelVersion("churn", 1, "md5:abc"), RenderOptions())
