"""`funade pipeline submit --target kubeflow`: the requests are the ones kfp.Client sends for
the same compiled pipeline. The kfp SDK's own client (2.17.3) creates a run and a recurring
run against a stand-in of KFP's v2beta1 API on a free port, and its bodies are compared, field
by field, with what funade's --dry-run prints and a real submission sends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.pipelines.kfpir import to_yaml
from funade.pipelines.submit import Request
from funade.pipelines.submitkfp import EXPERIMENT_PLACEHOLDER, KubeflowEngine
from funade.pipelines.submitrun import SubmitOptions, dry_run
from tests.conftest import Result
from tests.pipelines.standin import FLOW as STANDIN_FLOW
from tests.pipelines.standin import StandIn, standin

ROOT = "minio://mlpipeline/v2/artifacts"
RUNS = "/apis/v2beta1/runs"

FLOW = STANDIN_FLOW.format(
    options='(secrets={"DB_PASSWORD": "k8s:db-credentials/password"}, timeout="10m")'
)


pytestmark = pytest.mark.filterwarnings(
    "ignore:This client only works with Kubeflow Pipeline v2.0.0-beta.2:FutureWarning"
)


@pytest.fixture
def kfp_api() -> Iterator[StandIn]:
    with standin() as api:
        api.route("GET", "/apis/v2beta1/healthz", (200, {"multi_user": False}))
        api.route(
            "GET",
            "/apis/v2beta1/experiments",
            (200, {"experiments": [{"experiment_id": "exp-1", "display_name": "Default"}]}),
        )
        api.route("POST", RUNS, (200, {"run_id": "run-1", "state": "PENDING"}))
        api.route("POST", "/apis/v2beta1/recurringruns", (200, {"recurring_run_id": "rr-1"}))
        yield api


@pytest.fixture
def engine(kfp_api: StandIn) -> Iterator[KubeflowEngine]:
    with httpx.Client() as http:
        yield KubeflowEngine(kfp_api.url, http=http)


def _package(tmp_path: Path, request: Request) -> str:
    """The compiled YAML (as `funade pipeline compile` writes it) of a dry-run's request."""
    assert request.body is not None
    package = request.body["pipeline_spec"]
    path = tmp_path / "flow.yaml"
    path.write_text(to_yaml(package["pipeline_spec"], package.get("platform_spec")))
    return str(path)


def _ours(request: Request) -> dict[str, Any]:
    assert request.body is not None
    placeholder = EXPERIMENT_PLACEHOLDER.format(name="Default")
    assert request.body["experiment_id"] == placeholder
    return {**request.body, "experiment_id": "exp-1"}


def test_the_run_is_the_one_kfp_client_sends(
    write_pipeline: Callable[..., str], engine: KubeflowEngine, kfp_api: StandIn, tmp_path: Path
) -> None:
    import kfp

    options = SubmitOptions(
        text_params={"rows": "20"},
        pipeline_root=ROOT,
        service_account="pipeline-runner",
        funade_url="https://funade.example",
    )
    lookup, ours = dry_run(engine, write_pipeline(FLOW), options)[-2:]
    assert ours.url == f"{kfp_api.url}{RUNS}"
    kfp.Client(host=kfp_api.url).create_run_from_pipeline_package(
        _package(tmp_path, ours),
        arguments={"rows": 20},
        run_name="flow",
        experiment_name="Default",
        pipeline_root=ROOT,
        service_account="pipeline-runner",
    )
    (sent,) = kfp_api.requests("POST", RUNS)
    (found,) = kfp_api.requests("GET", "/apis/v2beta1/experiments")
    assert lookup.params == {"filter": found.query["filter"]}
    body = _ours(ours)
    assert sorted(body) == sorted(sent.body)
    for key in sent.body:
        assert body[key] == sent.body[key], key
    platform = body["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]
    secrets = platform["deploymentSpec"]["executors"]["exec-load"]["secretAsEnv"]
    assert {s["secretName"] for s in secrets} == {"db-credentials", "funade-run-0"}


def test_no_cache_is_kfp_clients_enable_caching_false(
    write_pipeline: Callable[..., str], engine: KubeflowEngine, kfp_api: StandIn, tmp_path: Path
) -> None:
    import kfp

    options = SubmitOptions(funade_url="https://funade.example")
    target = write_pipeline(FLOW)
    cached = dry_run(engine, target, options)[-1]
    ours = _ours(dry_run(engine, target, replace(options, use_cache=False))[-1])
    kfp.Client(host=kfp_api.url).create_run_from_pipeline_package(
        _package(tmp_path, cached), run_name="flow", enable_caching=False
    )
    (sent,) = kfp_api.requests("POST", RUNS)
    assert ours == sent.body
    tasks = ours["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
    assert [t["cachingOptions"] for t in tasks.values()] == [{}, {}]


def test_the_schedule_is_the_one_kfp_client_creates(
    write_pipeline: Callable[..., str], engine: KubeflowEngine, kfp_api: StandIn, tmp_path: Path
) -> None:
    import kfp

    options = SubmitOptions(pipeline_root=ROOT, schedule="30 3 * * 1-5")
    *_, ours = dry_run(engine, write_pipeline(FLOW), options)
    assert ours.url == f"{kfp_api.url}/apis/v2beta1/recurringruns"
    kfp.Client(host=kfp_api.url).create_recurring_run(
        experiment_id="exp-1",
        job_name="flow",
        pipeline_package_path=_package(tmp_path, ours),
        cron_expression="0 30 3 * * 1-5",  # KFP's cron: seconds first
        pipeline_root=ROOT,
    )
    (sent,) = kfp_api.requests("POST", "/apis/v2beta1/recurringruns")
    assert _ours(ours) == sent.body


def test_a_real_submission_sends_what_the_dry_run_shows(
    write_pipeline: Callable[..., str], engine: KubeflowEngine, kfp_api: StandIn
) -> None:
    """The engine finds the experiment, then POSTs the body --dry-run printed."""
    from funade.pipelines.runs import prepare
    from funade.pipelines.submitrun import _submission

    options = SubmitOptions(pipeline_root=ROOT, funade_url="https://funade.example")
    target = write_pipeline(FLOW)
    shown = _ours(dry_run(engine, target, options)[-1])
    job, console = engine.create(_submission(engine, prepare(target), options, None))
    assert (job, console) == ("run-1", f"{kfp_api.url}/#/runs/details/run-1")
    (sent,) = kfp_api.requests("POST", RUNS)
    assert sent.body == shown


def test_a_missing_experiment_is_made(kfp_api: StandIn, engine: KubeflowEngine) -> None:
    kfp_api.route("GET", "/apis/v2beta1/experiments", (200, {}))
    kfp_api.route("POST", "/apis/v2beta1/experiments", (200, {"experiment_id": "exp-9"}))
    assert engine.experiment_id() == "exp-9"
    (made,) = kfp_api.requests("POST", "/apis/v2beta1/experiments")
    assert made.body == {"display_name": "Default"}


def test_the_cli_prints_the_requests(
    write_pipeline: Callable[..., str], cli: Callable[..., Result]
) -> None:
    result = cli(
        "pipeline", "submit", write_pipeline(FLOW), "--target", "kubeflow",
        "--host", "http://localhost:8080", "--no-cache", "--dry-run",
        "--funade-url", "https://funade.example",
    )  # fmt: skip
    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert [(r["method"], r["url"]) for r in shown] == [
        ("POST", "<the Kubernetes API of your kubeconfig>/api/v1/namespaces/kubeflow/secrets"),
        ("GET", "http://localhost:8080/apis/v2beta1/experiments"),
        ("POST", "http://localhost:8080/apis/v2beta1/runs"),
    ]
    assert shown[0]["body"]["metadata"]["name"] == "funade-run-0"


def test_the_cli_submits_and_follows_a_kubeflow_run(
    write_pipeline: Callable[..., str],
    cli: Callable[..., Result],
    kfp_api: StandIn,
    app_url: str,
    admin_key: str,
    admin: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The whole command: the kubeconfig read for the Kubernetes API (here the stand-in, with
    a bearer token), the Secret stored, the run created and followed to its end."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": kfp_api.url}}],
                "users": [{"name": "u", "user": {"token": "kube-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)
    kfp_api.route("POST", "/api/v1/namespaces/kubeflow/secrets", (201, {}))
    kfp_api.route("DELETE", "/api/v1/namespaces/kubeflow/secrets/.+", (200, {}))
    kfp_api.route("GET", f"{RUNS}/run-1", (200, {"state": "FAILED", "error": {"message": "OOM"}}))
    result = cli(
        "pipeline", "submit", write_pipeline(FLOW), "--target", "kubeflow",
        "--host", kfp_api.url, "--interval", "1",
    )  # fmt: skip
    assert result.code == 1, result.err
    (run,) = admin.list_runs().items
    assert f"Run {run.id} submitted to kubeflow as run-1" in result.out
    assert "kubeflow: FAILED" in result.out
    assert "the kubeflow job run-1 ended FAILED: OOM" in result.out
    (secret,) = kfp_api.requests("POST", "/api/v1/namespaces/kubeflow/secrets")
    assert secret.headers["authorization"] == "Bearer kube-token"
    assert kfp_api.requests("DELETE", f"/api/v1/namespaces/kubeflow/secrets/funade-run-{run.id}")
    (created,) = kfp_api.requests("POST", RUNS)
    env = created.body["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"]
    assert {"name": "FUNADE_URL", "value": app_url} in env["exec-load"]["container"]["env"]
    assert run.state == "failed"


def test_an_unreadable_kubeconfig_is_named(
    write_pipeline: Callable[..., str],
    cli: Callable[..., Result],
    kfp_api: StandIn,
    app_url: str,
    admin_key: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FUNADE_URL", app_url)
    monkeypatch.setenv("FUNADE_API_KEY", admin_key)
    result = cli(
        "pipeline", "submit", write_pipeline(FLOW), "--target", "kubeflow", "--host", kfp_api.url
    )
    assert result.code == 2
    assert result.err.startswith("error: No Kubernetes credentials to store the run's token with")
    assert "Point KUBECONFIG" in result.err
