"""`funade pipeline submit`: hostile options are refused before anything is sent (cron, Google
project and region names, URLs with other schemes or credentials, bucket paths, service
accounts), and the run's token never appears in what is compiled, printed, sent to create the
job, or recorded with the run: only in the one request that stores it in the engine's secret
store."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from funade.client import Client
from funade.pipelines.submitkfp import KubeflowEngine
from funade.pipelines.submitrun import SubmitOptions, submit
from funade.pipelines.submitvertex import VertexEngine
from tests.conftest import Result
from tests.pipelines.standin import StandIn, standin

FLOW = """
@funade.step
def load(rows: int) -> list[float]:
    return [float(i) for i in range(rows)]


@funade.pipeline
def flow(rows: int = 10):
    load(rows)
"""

VERTEX = ["--target", "vertex", "--project", "acme-ml", "--region", "europe-west4"]
ROOT = ["--pipeline-root", "gs://acme-ml/pipelines"]


@pytest.fixture
def target(tmp_path: Path) -> str:
    path = tmp_path / "code" / "flow.py"
    path.parent.mkdir()
    path.write_text("from __future__ import annotations\n\nimport funade\n" + textwrap.dedent(FLOW))
    return f"{path}:flow"


def _refused(result: Result, field: str) -> str:
    assert result.code == 2, result.out
    assert result.out == ""  # nothing printed as if it had been sent
    assert result.err.startswith("error: ")
    assert field in result.err
    return result.err


@pytest.mark.parametrize(
    "cron",
    ["* * *", "61 * * * *", "0 3 * * 1; rm -rf /", "0 3 31 2 *", "@reboot", "0 0 3 * * *"],
)
def test_bad_cron_is_refused(cli: Callable[..., Result], target: str, cron: str) -> None:
    err = _refused(
        cli("pipeline", "submit", target, *VERTEX, *ROOT, "--schedule", cron, "--dry-run"),
        "schedule",
    )
    assert "Use five fields" in err


@pytest.mark.parametrize(
    "project",
    ["Acme-ML", "a", "acme ml", "acme-ml/locations/x", "../acme", "acme-ml?x=1", "acme-", "é"],
)
def test_bad_google_project_is_refused(
    cli: Callable[..., Result], target: str, project: str
) -> None:
    args = ["--target", "vertex", "--project", project, "--region", "europe-west4"]
    err = _refused(cli("pipeline", "submit", target, *args, *ROOT, "--dry-run"), "--project")
    assert "is not a Google Cloud project id" in err


@pytest.mark.parametrize(
    "region",
    ["us", "EUROPE-WEST4", "europe-west4/../../x", "europe-west4.evil.com", "us-central1 "],
)
def test_bad_region_is_refused(cli: Callable[..., Result], target: str, region: str) -> None:
    args = ["--target", "vertex", "--project", "acme-ml", "--region", region]
    err = _refused(cli("pipeline", "submit", target, *args, *ROOT, "--dry-run"), "--region")
    assert "is not a Google Cloud region" in err


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("file:///etc/passwd", "its scheme is 'file'"),
        ("javascript:alert(1)", "its scheme is 'javascript'"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "its scheme is 'gopher'"),
        ("kfp.example.com", "its scheme is 'missing'"),
        ("http://", "it has no host"),
        ("https://admin:hunter2@kfp.example.com", "it holds a user or password"),
        ("https://kfp.example.com/?token=x", "it has a query or fragment"),
    ],
)
def test_host_urls_other_than_http_are_refused(
    cli: Callable[..., Result], target: str, host: str, problem: str
) -> None:
    args = ["--target", "kubeflow", "--host", host, "--dry-run"]
    err = _refused(cli("pipeline", "submit", target, *args), "--host")
    assert problem in err
    assert "hunter2" not in err  # a password in the URL is not echoed back


def test_funade_url_and_api_endpoint_are_checked_alike(
    cli: Callable[..., Result], target: str
) -> None:
    err = _refused(
        cli("pipeline", "submit", target, *VERTEX, *ROOT, "--dry-run",
            "--funade-url", "https://me:pw@funade.example"),
        "--funade-url",
    )  # fmt: skip
    assert "pw@" not in err
    err = _refused(
        cli("pipeline", "submit", target, *VERTEX, *ROOT, "--dry-run",
            "--api-endpoint", "ftp://aiplatform.example"),
        "--api-endpoint",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--pipeline-root", "s3://bucket/x"], "--pipeline-root"),  # not on Vertex
        (["--pipeline-root", 'gs://b/x"; rm -rf /'], "--pipeline-root"),
        (["--pipeline-root", "file:///tmp"], "--pipeline-root"),
        (["--pipeline-root", "gs://"], "--pipeline-root"),
        (["--service-account", "root"], "--service-account"),
        (["--service-account", "a@evil.com"], "--service-account"),
        (["--interval", "0"], "--interval"),
        (["--interval", "120"], "--interval"),
    ],
)
def test_other_hostile_options_are_refused(
    cli: Callable[..., Result], target: str, args: list[str], field: str
) -> None:
    _refused(cli("pipeline", "submit", target, *VERTEX, *args, "--dry-run"), field)


def test_unknown_target_and_missing_options(cli: Callable[..., Result], target: str) -> None:
    err = _refused(
        cli("pipeline", "submit", target, "--target", "airflow", "--dry-run"), "--target"
    )
    assert "Use --target vertex" in err
    err = _refused(
        cli(
            "pipeline", "submit", target, "--target", "vertex", "--project", "acme-ml", "--dry-run"
        ),
        "--region",
    )
    err = _refused(cli("pipeline", "submit", target, "--target", "kubeflow", "--dry-run"), "--host")
    err = _refused(
        cli("pipeline", "submit", target, *VERTEX, *ROOT, "--no-cache", "--refresh", "--dry-run"),
        "refresh_cache",
    )


def test_the_dry_run_prints_no_credential(
    cli: Callable[..., Result], target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "kfp-token"
    token_file.write_text("kfp-bearer-secret")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    monkeypatch.setenv("FUNADE_API_KEY", "fnd_the_starters_own_key")
    for args in (
        [*VERTEX, *ROOT],
        ["--target", "kubeflow", "--host", "https://kfp.example.com"],
    ):
        result = cli("pipeline", "submit", target, *args, "--dry-run")
        assert result.code == 0, result.err
        assert "fnd_the_starters_own_key" not in result.out
        assert "kfp-bearer-secret" not in result.out
        stored = next(r for r in json.loads(result.out) if "never printed" in json.dumps(r))
        assert stored["purpose"].startswith(("the run's token", "a Kubernetes Secret"))


@pytest.fixture
def engines() -> Iterator[tuple[StandIn, VertexEngine, KubeflowEngine]]:
    with standin() as api, httpx.Client() as http:
        api.route("POST", r"/v1/projects/acme-ml/.+", (200, {"name": "projects/acme-ml/x/j"}))
        api.route(
            "GET", "/apis/v2beta1/experiments", (200, {"experiments": [{"experiment_id": "e"}]})
        )
        api.route("POST", r"/apis/v2beta1/runs", (200, {"run_id": "r"}))
        api.route("POST", r"/api/v1/namespaces/kubeflow/secrets", (201, {}))
        vertex = VertexEngine(
            "acme-ml", "europe-west4", http=http, endpoint=api.url, secrets_endpoint=api.url
        )
        kubeflow = KubeflowEngine(api.url, http=http, kube=(api.url, http))
        yield api, vertex, kubeflow


def test_the_runs_token_is_only_in_the_secret_store(
    engines: tuple[StandIn, VertexEngine, KubeflowEngine],
    target: str,
    admin: Client,
    app_url: str,
) -> None:
    api, vertex, kubeflow = engines
    for engine in (vertex, kubeflow):
        options = SubmitOptions(
            pipeline_root="gs://acme-ml/pipelines" if engine is vertex else None,
            funade_url=app_url,
        )
        done = submit(engine, target, options, admin)
        assert done.run is not None
        assert len(done.token) > 20
        holding = [
            s
            for s in api.seen
            if done.token in json.dumps(s.body)
            or base64.b64encode(done.token.encode()).decode() in json.dumps(s.body)
        ]
        assert [s.path for s in holding] == [
            f"/v1/projects/acme-ml/secrets/funade-run-{done.run.id}:addVersion"
            if engine is vertex
            else "/api/v1/namespaces/kubeflow/secrets"
        ]
        assert done.token not in json.dumps([r.shown() for r in done.requests])
        recorded = admin.get_run(done.run.id, spec=True)
        assert done.token not in recorded.model_dump_json()
        api.seen.clear()


def test_a_schedules_dry_run_shows_its_secret_redacted(
    cli: Callable[..., Result], target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNADE_API_KEY", "fnd_the_starters_own_key")
    for args in (
        [*VERTEX, *ROOT],
        ["--target", "kubeflow", "--host", "https://kfp.example.com"],
    ):
        result = cli("pipeline", "submit", target, *args, "--schedule", "0 3 * * *", "--dry-run")
        assert result.code == 0, result.err
        assert "fnd_the_starters_own_key" not in result.out
        shown = json.loads(result.out)
        made, written, deleted = shown[:3]
        assert "funade-schedule-" in json.dumps(made)
        assert "token" not in json.dumps(made["body"])
        assert "never printed" in json.dumps(written["body"])
        assert deleted["method"] == "DELETE"
        assert "FUNADE_API_KEY" not in result.out
