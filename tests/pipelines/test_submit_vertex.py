"""`funade pipeline submit --target vertex`: the requests are the ones google-cloud-aiplatform
sends for the same compiled pipeline. aiplatform itself (over its REST transport) sends its
PipelineJob and Schedule to a stand-in of Vertex's API on a free port, and each body is
compared, field by field, with what funade's --dry-run prints and a real submission sends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from funade.errors import InvalidInputError
from funade.pipelines.submitrun import SubmitOptions, dry_run
from funade.pipelines.submitvertex import VertexEngine, caching_off
from funade.pipelines.vertexrefs import SECRET_REFS_ENV
from tests.conftest import Result
from tests.pipelines.standin import FLOW as STANDIN_FLOW
from tests.pipelines.standin import StandIn, standin

PROJECT, REGION = "acme-ml", "europe-west4"
ROOT = "gs://acme-ml/pipelines"
SA = "pipelines@acme-ml.iam.gserviceaccount.com"
JOBS = rf"/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs"

FLOW = STANDIN_FLOW.format(options='(secrets={"DB_PASSWORD": "gsm:db-password"})')


@pytest.fixture
def engine() -> Iterator[VertexEngine]:
    with httpx.Client() as http:
        yield VertexEngine(PROJECT, REGION, http=http)


@pytest.fixture
def vertex(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    """aiplatform pointed at a stand-in of Vertex's REST API (anonymous credentials; its
    attempt to create a GCS bucket for the artifacts, a storage call, is left out)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import initializer, pipeline_jobs

    monkeypatch.setattr(initializer, "global_config", initializer._Config())
    monkeypatch.setattr(
        pipeline_jobs.gcs_utils,
        "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
        lambda **_: None,
    )
    with standin() as api:
        api.route("POST", JOBS, (200, {"name": f"{JOBS[4:]}/training-1"}))
        api.route(
            "POST",
            rf"/v1/projects/{PROJECT}/locations/{REGION}/schedules",
            (200, {"name": f"projects/{PROJECT}/locations/{REGION}/schedules/1"}),
        )
        initializer.global_config.init(  # (aiplatform.init is the replaced config's)
            project=PROJECT,
            location=REGION,
            credentials=AnonymousCredentials(),
            api_endpoint=api.url,
            api_transport="rest",
        )
        yield api


def _aiplatform_job(tmp_path: Path, pipeline_spec: dict[str, Any], **kwargs: Any) -> Any:
    from google.cloud import aiplatform

    template = tmp_path / "aiplatform.yaml"
    template.write_text(yaml.safe_dump(pipeline_spec))
    return aiplatform.PipelineJob(template_path=str(template), pipeline_root=ROOT, **kwargs)


def test_the_job_is_the_one_aiplatform_sends(
    write_pipeline: Callable[..., str], engine: VertexEngine, vertex: StandIn, tmp_path: Path
) -> None:
    options = SubmitOptions(
        text_params={"rows": "20"},
        pipeline_root=ROOT,
        service_account=SA,
        funade_url="https://funade.example",
    )
    *token, ours = dry_run(engine, write_pipeline(FLOW), options)
    assert ours.method == "POST"
    job = _aiplatform_job(
        tmp_path,
        ours.body["pipelineSpec"],  # type: ignore[index]
        display_name="flow",
        parameter_values={"rows": 20},
        job_id=ours.params["pipelineJobId"],
    )
    job.submit(service_account=SA)
    (sent,) = vertex.requests("POST", JOBS)
    assert urlsplit(ours.url).path == sent.path
    assert ours.url == f"https://{REGION}-aiplatform.googleapis.com{sent.path}"
    assert ours.params["pipelineJobId"] == sent.query["pipelineJobId"]
    assert ours.params["pipelineJobId"].startswith("flow-")
    assert sorted(ours.body) == sorted(sent.body)  # type: ignore[arg-type]
    for key in sent.body:
        assert ours.body[key] == sent.body[key], key  # type: ignore[index]
    assert ours.body["runtimeConfig"] == {  # type: ignore[index]
        "gcsOutputDirectory": ROOT,
        "parameterValues": {"rows": 20},
    }
    assert [t.purpose for t in token] == [
        "a secret for the run's token, which the steps read by reference",
        "the run's token as the secret's one version",
    ]


def test_no_cache_is_aiplatforms_enable_caching_false(
    write_pipeline: Callable[..., str], engine: VertexEngine, vertex: StandIn, tmp_path: Path
) -> None:
    target = write_pipeline(FLOW)
    options = SubmitOptions(pipeline_root=ROOT, funade_url="https://funade.example")
    cached = dry_run(engine, target, options)[-1].body
    for flag in ("use_cache", "refresh_cache"):
        changes = {"use_cache": False} if flag == "use_cache" else {"refresh_cache": True}
        ours = dry_run(engine, target, replace(options, **changes))[-1].body
        assert ours is not None
        assert cached is not None
        job = _aiplatform_job(
            tmp_path, cached["pipelineSpec"], display_name="flow", enable_caching=False
        )
        assert ours["pipelineSpec"] == job.to_dict()["pipelineSpec"], flag
    tasks = ours["pipelineSpec"]["root"]["dag"]["tasks"]
    assert {t["cachingOptions"]["enableCache"] for t in tasks.values()} == {False}
    # the compiled spec itself is left as it was
    assert cached["pipelineSpec"]["root"]["dag"]["tasks"]["fit"]["cachingOptions"] == {
        "enableCache": True
    }
    assert caching_off(cached["pipelineSpec"]) == ours["pipelineSpec"]


def test_the_schedule_is_the_one_aiplatform_creates(
    write_pipeline: Callable[..., str], engine: VertexEngine, vertex: StandIn, tmp_path: Path
) -> None:
    from google.cloud import aiplatform

    options = SubmitOptions(pipeline_root=ROOT, service_account=SA, schedule="0  3 * * 1")
    requests = dry_run(engine, write_pipeline(FLOW), options)
    # no run, so no run token: the per-schedule secret's requests (made, written, deleted)
    assert [r.method for r in requests] == ["POST", "POST", "DELETE", "POST"]
    ours = requests[-1]
    assert ours.body is not None
    spec = ours.body["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"]
    job = _aiplatform_job(tmp_path, spec, display_name="flow")
    aiplatform.PipelineJobSchedule(pipeline_job=job, display_name="flow").create(
        cron="0 3 * * 1", service_account=SA
    )
    (sent,) = vertex.requests("POST", rf"/v1/projects/{PROJECT}/locations/{REGION}/schedules")
    assert urlsplit(ours.url).path == sent.path
    assert ours.body == sent.body
    assert ours.body["cron"] == "0 3 * * 1"  # type: ignore[index]


def test_steps_get_secrets_and_the_runs_token_by_reference(
    write_pipeline: Callable[..., str], engine: VertexEngine
) -> None:
    options = SubmitOptions(pipeline_root=ROOT, funade_url="https://funade.example")
    body = dry_run(engine, write_pipeline(FLOW), options)[-1].body
    assert body is not None
    executors = body["pipelineSpec"]["deploymentSpec"]["executors"]
    env = {e["name"]: e["value"] for e in executors["exec-load"]["container"]["env"]}
    assert json.loads(env.pop(SECRET_REFS_ENV)) == {
        "DB_PASSWORD": f"projects/{PROJECT}/secrets/db-password/versions/latest",
        "FUNADE_API_KEY": f"projects/{PROJECT}/secrets/funade-run-0/versions/latest",
    }
    assert env == {
        "FUNADE_PIPELINE": "flow",
        "FUNADE_RUN_ID": "0",
        "FUNADE_URL": "https://funade.example",
    }
    fit_env = {e["name"] for e in executors["exec-fit"]["container"]["env"]}
    assert SECRET_REFS_ENV in fit_env  # every step has the run's token
    assert "platformSpec" not in body
    assert "platform_spec" not in body


def test_a_kubernetes_secret_is_refused_on_vertex(
    write_pipeline: Callable[..., str], engine: VertexEngine
) -> None:
    target = write_pipeline(FLOW.replace("gsm:db-password", "k8s:db/password"))
    with pytest.raises(InvalidInputError) as caught:
        dry_run(engine, target, SubmitOptions(pipeline_root=ROOT))
    assert caught.value.field == "secrets.DB_PASSWORD"
    assert str(caught.value).startswith(
        "pipeline 'flow', step 'load': secret DB_PASSWORD = 'k8s:db/password' is not a Secret "
        "Manager reference; Vertex AI ignores Kubernetes Secrets"
    )
    assert caught.value.fix is not None
    assert "gsm:projects/acme-ml/secrets/NAME" in caught.value.fix


def test_vertex_needs_a_pipeline_root(
    write_pipeline: Callable[..., str], engine: VertexEngine
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        dry_run(engine, write_pipeline(FLOW), SubmitOptions())
    assert caught.value.field == "pipeline-root"
    assert "Vertex AI needs a bucket" in str(caught.value)


def test_the_cli_prints_the_requests_without_credentials(
    write_pipeline: Callable[..., str], cli: Callable[..., Result]
) -> None:
    result = cli(
        "pipeline", "submit", write_pipeline(FLOW), "--target", "vertex",
        "--project", PROJECT, "--region", REGION, "--pipeline-root", ROOT,
        "--funade-url", "https://funade.example", "-p", "rows=3", "--dry-run",
    )  # fmt: skip
    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert [(r["method"], urlsplit(r["url"]).path) for r in shown] == [
        ("POST", f"/v1/projects/{PROJECT}/secrets"),
        ("POST", f"/v1/projects/{PROJECT}/secrets/funade-run-0:addVersion"),
        ("POST", JOBS),
    ]
    assert shown[2]["body"]["runtimeConfig"]["parameterValues"] == {"rows": 3}
