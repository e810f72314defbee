"""`funade manifests`: the version read from a real control plane, the files it writes, and bad
options refused before anything is read or written."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import funade
from funade.client import Client
from tests.cli.conftest import Result
from tests.models import logistic_regression, sample


@pytest.fixture
def remote(app_url: str, admin_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)


def test_manifests_of_a_registered_version(
    remote: None, admin: Client, cli: Callable[..., Result], tmp_path: Path
) -> None:
    for _ in range(2):
        funade.log_model(logistic_regression(), "Churn_Model", sample_input=sample(), client=admin)
    admin.set_alias("Churn_Model", "production", 1)
    digest = admin.get_version("Churn_Model", "1").artifact.digest
    out = tmp_path / "k8s"
    done = cli(
        "manifests", "Churn_Model@production", "-o", str(out), "--revision", "2",
        "--cpu", "1", "--max-replicas", "3", "--ready-timeout", "20m", "-n", "models",
    )  # fmt: skip
    assert done.code == 0, done.err
    name = "churn-model-" + hashlib.sha256(b"Churn_Model").hexdigest()[:8]
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        f"{name}-r2-deployment.yaml",
        f"{name}-r2-horizontalpodautoscaler.yaml",
        f"{name}-r2-service.yaml",
    ]
    assert f"Wrote {out / files[0]} (Deployment)." in done.out
    deployment = yaml.safe_load((out / files[0]).read_text())
    for file in files:
        kubernetes_validate.validate(yaml.safe_load((out / file).read_text()), "1.33", strict=True)
    assert deployment["metadata"]["annotations"]["funade.dev/digest"] == digest
    assert deployment["metadata"]["annotations"]["funade.dev/source"] == "Churn_Model:1"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["startupProbe"]["failureThreshold"] == 120  # 20 minutes, every 10 s
    assert container["image"].startswith(f"funade/{name}:1-{digest[7:19]}")

    knative = cli("manifests", "Churn_Model", "--target", "knative", "-o", str(tmp_path / "kn"))
    assert knative.code == 0, knative.err
    assert sorted(p.name for p in (tmp_path / "kn").iterdir()) == [
        f"{name}-service.yaml",
        f"{name}-virtualservice.yaml",
    ]
    service = yaml.safe_load((tmp_path / "kn" / f"{name}-service.yaml").read_text())
    assert service["metadata"]["annotations"]["funade.dev/source"] == "Churn_Model:2"

    stream = cli("manifests", "Churn_Model:1", "--target", "kserve", "-o", "-")
    assert stream.code == 0, stream.err
    (isvc,) = yaml.safe_load_all(stream.out)
    assert isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["annotations"]["funade.dev/digest"] == digest
    assert "args" not in isvc["spec"]["predictor"]["containers"][0]  # served as the image says
    named = cli("manifests", "Churn_Model:1", "--target", "kserve", "--name", "churn", "-o", "-")
    assert named.code == 0, named.err
    (isvc,) = yaml.safe_load_all(named.out)
    assert isvc["metadata"]["name"] == "churn"
    # KServe's clients call /v2/models/<InferenceService>/infer: the model answers to that name.
    assert isvc["spec"]["predictor"]["containers"][0]["args"] == ["--name", "churn"]

    missing = cli("manifests", "churn:7", "-o", str(tmp_path / "none"))
    assert missing.code == 2
    assert missing.err.startswith("error: ")
    assert "churn" in missing.err
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "helm"], "error: --target 'helm' is not a target. Use one of: kubernetes, "
         "kserve, knative."),
        (["--cpu", "lots"], "error: --cpu 'lots' is not a CPU quantity."),
        (["--toleration", "gpu"], "error: --toleration 'gpu' is not a toleration."),
        (["--node-selector", "gpu"], "error: --node-selector 'gpu' is not KEY=VALUE."),
        (["--model-cache", "hostpath:/etc"], "error: --model-cache 'hostpath:/etc' is not a model "
         "cache."),
        (["--ready-timeout", "soon"], "error: --ready-timeout 'soon' is not a duration."),
        (["--name", "Churn"], "error: --name 'Churn' is not a valid Kubernetes name."),
        (["--canary-weight", "10"], "error: --canary-weight 10 applies to --target knative or "
         "kserve."),
    ],
)  # fmt: skip
def test_a_bad_option_is_one_error_line_naming_it(
    cli: Callable[..., Result], tmp_path: Path, args: list[str], message: str
) -> None:
    """Refused before the control plane is asked (none runs here) and before a file is made."""
    done = cli("manifests", "churn:1", "-o", str(tmp_path / "out"), *args)
    assert done.code == 2
    assert done.err.startswith(message), done.err
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_refused(cli: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "k8s").write_text("")
    done = cli("manifests", "churn:1", "-o", str(tmp_path / "k8s"))
    assert done.code == 2
    assert done.err.startswith(f"error: --output '{tmp_path / 'k8s'}' is a file, not a directory.")
