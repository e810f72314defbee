"""The steps of a scheduled remote run get a run token: the schedule's steps carry a reference to
a per-schedule secret and the job's name, `funade pipeline follow` writes each recorded job's
run id and token into it and removes the entry when the run ends, and a step (the real
`funade pipeline step` process) waits for its own job's entry. A real control plane on a free
port; stand-ins of KFP, Vertex AI, Kubernetes' Secrets and Secret Manager (``SecretStores``)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.client import Client
from funade.errors import AuthenticationError, InvalidInputError
from funade.pipelines.scheduletoken import (
    JOB_INPUT,
    MOUNT,
    SECRET_ENV,
    TOKENS_ENV,
    WAIT_ENV,
    job_key,
    read_mounted,
    resolve_schedule_token,
    wait_for_token,
)
from funade.pipelines.submit import REDACTED_ENTRIES, EngineError
from funade.pipelines.submitkfp import KubeflowEngine
from funade.pipelines.submitrun import SubmitOptions, dry_run, submit
from funade.pipelines.submitschedule import follow_schedule, missing_secret
from funade.pipelines.submitvertex import VertexEngine
from funade.pipelines.vertexrefs import latest_fetch
from tests.pipelines.scheduled import (
    CRON,
    PARENT,
    SCHEDULE,
    Script,
    kubeflow_engine,
    kubeflow_schedules,
    scheduled_jobs,
    vertex_engine,
    vertex_schedules,
)
from tests.pipelines.standin import ScheduledJobs, SecretStores, StandIn, standin

FLOW = """
import json
import os


@funade.step
def load(rows: int) -> list[float]:
    run = funade.Client().get_run(int(os.environ["FUNADE_RUN_ID"]))
    with open(os.environ["MARKS"], "a") as marks:
        marks.write(json.dumps({"run": run.id, "job": run.runner["job"]}) + "\\n")
    return [float(i) for i in range(rows)]


@funade.step
def fit(xs: list[float], c: float) -> float:
    return sum(xs) * c


@funade.pipeline
def flow(rows: int = 10, c: float = 0.5):
    fit(load(rows), c)
"""
"""A pipeline whose first step calls funade with the token it got (the run it reads is its
own only if the token is its run's) and writes what it read to $MARKS."""


@pytest.fixture
def kfp() -> Iterator[tuple[StandIn, SecretStores, KubeflowEngine]]:
    with standin() as api, httpx.Client() as http:
        yield api, kubeflow_schedules(api), kubeflow_engine(api, http)


@pytest.fixture
def vertex() -> Iterator[tuple[StandIn, SecretStores, VertexEngine]]:
    with standin() as api, httpx.Client() as http:
        yield api, vertex_schedules(api), vertex_engine(api, http)


def _spec(body: dict[str, Any]) -> dict[str, Any]:
    """The PipelineSpec of a schedule as Kubeflow or Vertex AI was sent it."""
    spec = body.get("pipeline_spec") or body["createPipelineJobRequest"]["pipelineJob"]
    return dict(spec.get("pipeline_spec") or spec.get("pipelineSpec"))


def _container(body: dict[str, Any], step: str = "load") -> dict[str, Any]:
    return dict(_spec(body)["deploymentSpec"]["executors"][f"exec-{step}"]["container"])


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def _environ(folder: Path, **more: str) -> dict[str, str]:
    """A scheduled step's settings, its tokens read from ``folder``."""
    return {SECRET_ENV: "funade-schedule-0123456789ab", TOKENS_ENV: f"file:{folder}", **more}


def _schedule_kfp(
    kfp: tuple[StandIn, SecretStores, KubeflowEngine], target: str, admin: Client, app_url: str
) -> tuple[ScheduledJobs, str]:
    """The schedule made with `submit --schedule`, and its Secret's name."""
    api, stores, engine = kfp
    submit(engine, target, SubmitOptions(funade_url=app_url, schedule=CRON), admin)
    ((_, secret),) = stores.k8s
    return scheduled_jobs(api, "kubeflow"), secret


def _schedule_vertex(
    vertex: tuple[StandIn, SecretStores, VertexEngine],
    target: str,
    admin: Client,
    app_url: str,
    **options: Any,
) -> tuple[ScheduledJobs, str]:
    """The schedule made with `submit --schedule`, and its Secret Manager secret's name."""
    api, stores, engine = vertex
    more = SubmitOptions(pipeline_root="gs://b/p", funade_url=app_url, schedule=CRON, **options)
    submit(engine, target, more, admin)
    (secret,) = stores.gsm
    return scheduled_jobs(api, "vertex"), secret


# -- what the schedule's steps carry -------------------------------------------------------


def test_the_schedules_steps_carry_the_secret_and_the_job_name_and_no_token(
    write_pipeline: Callable[..., str],
    kfp: tuple[StandIn, SecretStores, KubeflowEngine],
    admin: Client,
    app_url: str,
) -> None:
    _, stores, _ = kfp
    target = write_pipeline(FLOW)
    jobs, secret = _schedule_kfp(kfp, target, admin, app_url)
    assert stores.k8s == {("kubeflow", secret): {}}  # made empty, before the schedule
    sent = jobs.body
    assert (sent["max_concurrency"], sent["mode"]) == (1, "ENABLE")
    spec, platform = _spec(sent), sent["pipeline_spec"]["platform_spec"]
    for step in ("load", "fit"):
        container = _container(sent, step)
        assert _env(container) == {
            "FUNADE_URL": app_url,
            "FUNADE_PIPELINE": "flow",
            "FUNADE_PROJECT": "default",
            SECRET_ENV: secret,
            TOKENS_ENV: f"file:{MOUNT}",
        }
        assert container["args"][-2:] == ["--job", "{{$.inputs.parameters['funade_job']}}"]
        task = spec["root"]["dag"]["tasks"][step]
        assert task["inputs"]["parameters"][JOB_INPUT] == {
            "runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}
        }
        inputs = spec["components"][f"comp-{step}"]["inputDefinitions"]["parameters"]
        assert inputs[JOB_INPUT] == {"parameterType": "STRING"}
        mounted = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
            f"exec-{step}"
        ]["secretAsVolume"]
        assert mounted == [
            {
                "mountPath": MOUNT,
                "optional": False,
                "secretName": secret,
                "secretNameParameter": {"runtimeValue": {"constant": secret}},
            }
        ]
    text = json.dumps(sent)
    assert "FUNADE_API_KEY" not in text
    assert "FUNADE_RUN_ID" not in text


def test_the_job_name_and_the_volume_are_what_kfp_compiles(tmp_path: Path) -> None:
    """kfp 2.17.3 and kfp-kubernetes 2.17.3 write a component argument given
    `dsl.PIPELINE_JOB_ID_PLACEHOLDER` and `use_secret_as_volume` as funade does."""
    import yaml
    from kfp import compiler, dsl

    from tests.pipelines.kfp_twin import scheduled_twin

    path = tmp_path / "twin.yaml"
    compiler.Compiler().compile(scheduled_twin, str(path))
    spec, platform = yaml.safe_load_all(path.read_text())
    assert spec["root"]["dag"]["tasks"]["k-scheduled"]["inputs"]["parameters"] == {
        JOB_INPUT: {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    }
    assert spec["deploymentSpec"]["executors"]["exec-k-scheduled"]["container"]["args"] == [
        "--job",
        "{{$.inputs.parameters['funade_job']}}",
    ]
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
        "exec-k-scheduled"
    ]
    assert executor["secretAsVolume"] == [
        {
            "mountPath": MOUNT,
            "optional": False,
            "secretName": "funade-schedule-0a",
            "secretNameParameter": {"runtimeValue": {"constant": "funade-schedule-0a"}},
        }
    ]
    assert dsl.PIPELINE_JOB_NAME_PLACEHOLDER == "{{$.pipeline_job_name}}"


def test_on_vertex_the_steps_read_the_secrets_latest_version(
    write_pipeline: Callable[..., str],
    vertex: tuple[StandIn, SecretStores, VertexEngine],
    admin: Client,
    app_url: str,
) -> None:
    _, stores, _ = vertex
    jobs, secret = _schedule_vertex(vertex, write_pipeline(FLOW), admin, app_url, token_wait=120)
    assert stores.gsm[secret] == []  # no version until the follower writes one
    env = _env(_container(jobs.body))
    assert env[TOKENS_ENV] == f"gsm:{secret}/versions/latest"
    assert env[SECRET_ENV] == secret.rsplit("/", 1)[-1]
    assert env[WAIT_ENV] == "120"
    task = _spec(jobs.body)["root"]["dag"]["tasks"]["load"]
    assert task["inputs"]["parameters"][JOB_INPUT] == {
        "runtimeValue": {"constant": "{{$.pipeline_job_name}}"}
    }
    assert "FUNADE_SECRET_REFS" not in env
    assert "FUNADE_API_KEY" not in json.dumps(jobs.body)


def test_the_dry_run_shows_the_secrets_requests_redacted(
    write_pipeline: Callable[..., str], vertex: tuple[StandIn, SecretStores, VertexEngine]
) -> None:
    api, _, engine = vertex
    options = SubmitOptions(pipeline_root="gs://b/p", funade_url="https://f", schedule=CRON)
    made, entries, deleted, schedule = dry_run(engine, write_pipeline(FLOW), options)
    assert (made.method, made.params["secretId"][:16]) == ("POST", "funade-schedule-")
    assert entries.body == {"payload": {"data": REDACTED_ENTRIES}}
    assert deleted.method == "DELETE"
    assert deleted.url.endswith(made.params["secretId"])
    assert schedule.url.endswith("/schedules")
    assert api.seen == []


def test_a_refused_schedule_deletes_its_secret(
    write_pipeline: Callable[..., str],
    kfp: tuple[StandIn, SecretStores, KubeflowEngine],
    admin: Client,
    app_url: str,
) -> None:
    api, stores, engine = kfp
    api.route("POST", "/apis/v2beta1/recurringruns", (400, {"error_message": "bad cron"}))
    options = SubmitOptions(funade_url=app_url, schedule=CRON)
    with pytest.raises(EngineError) as caught:
        submit(engine, write_pipeline(FLOW), options, admin)
    assert "bad cron" in str(caught.value)
    assert stores.k8s == {}
    assert len(api.requests("DELETE", "/api/v1/namespaces/kubeflow/secrets/.*")) == 1


def test_a_step_input_named_like_the_job_input_is_refused(
    write_pipeline: Callable[..., str], kfp: tuple[StandIn, SecretStores, KubeflowEngine]
) -> None:
    _, _, engine = kfp
    source = FLOW.replace("c: float) -> float:", "funade_job: float) -> float:")
    source = source.replace("* c\n", "* funade_job\n").replace(
        "fit(load(rows), c)", "fit(load(rows), funade_job=c)"
    )
    options = SubmitOptions(funade_url="https://f", schedule=CRON)
    with pytest.raises(InvalidInputError) as caught:
        dry_run(engine, write_pipeline(source), options)
    assert "its input 'funade_job' has the name of the input" in str(caught.value)


# -- follow writes the entries, a step reads its own ----------------------------------------


def _step_process(
    target: str, body: dict[str, Any], job: str, folder: Path, marks: Path, app_url: str,
    wait: str = "60",
) -> subprocess.Popen[str]:  # fmt: skip
    """`funade pipeline step` for the schedule's `load` step, as KFP's launcher starts it in
    job `job`'s pod (placeholders filled, the Secret's volume at `folder`)."""
    container = _container(body)
    executor_input = {"inputs": {"parameterValues": {"rows": 3.0, JOB_INPUT: job}}, "outputs": {
        "parameters": {"output": {"outputFile": str(folder.parent / f"{job}.out")}}}}  # fmt: skip
    args = [
        json.dumps(executor_input) if a == "{{$}}" else job if "funade_job" in a else a
        for a in container["args"]
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNADE_")}
    env |= _env(container)
    env |= {TOKENS_ENV: f"file:{folder}", WAIT_ENV: wait, "MARKS": str(marks)}
    env["FUNADE_HOME"] = os.environ["FUNADE_HOME"]
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(target.split(":")[0]).parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return subprocess.Popen(
        [sys.executable, "-m", "funade", "pipeline", "step", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Kubelet:
    """Keeps a folder in step with the stand-in's Secret while the steps run, as the kubelet
    updates a mounted secret volume."""

    def __init__(self, stores: SecretStores, secret: str, folder: Path) -> None:
        self.stores, self.secret, self.folder = stores, secret, folder
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sync, daemon=True)
        stores.mount("kubeflow", secret, folder)

    def _sync(self) -> None:
        while not self.stop.wait(0.05):
            self.stores.mount("kubeflow", self.secret, self.folder)

    def __enter__(self) -> Kubelet:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_each_step_waits_for_and_uses_its_own_jobs_token(
    write_pipeline: Callable[..., str],
    kfp: tuple[StandIn, SecretStores, KubeflowEngine],
    admin: Client,
    app_url: str,
    tmp_path: Path,
) -> None:
    """Two jobs of the schedule at once: each step process starts before the follower has
    recorded its job, waits, and reads funade with its own run's token; the entries go when
    the runs end, and the tokens are dead then."""
    api, stores, engine = kfp
    target = write_pipeline(FLOW)
    jobs, secret = _schedule_kfp(kfp, target, admin, app_url)
    first, second = jobs.start("r-1", "RUNNING"), jobs.start("r-2", "RUNNING")
    folder, marks = tmp_path / "mounted", tmp_path / "marks"
    steps: dict[str, subprocess.Popen[str]] = {}
    seen: dict[str, dict[str, str]] = {}

    def run_steps() -> None:
        seen["recorded"] = stores.k8s_values("kubeflow", secret)
        for job in (first, second):
            assert steps[job].wait(timeout=120) == 0, steps[job].communicate()[1]
        jobs.move(first, "SUCCEEDED")
        jobs.move(second, "FAILED")

    with Kubelet(stores, secret, folder):
        try:
            for job in (first, second):  # started before anything is written: they wait
                steps[job] = _step_process(target, jobs.body, job, folder, marks, app_url)
            script = Script(run_steps, lambda: setattr(jobs, "gone", True))
            done = follow_schedule(engine, target, "rr-1", admin, interval=0, sleep=script)
        finally:
            for process in steps.values():
                process.kill()
                process.communicate()
    runs = {r.runner["job"]: r for r in done.runs}
    assert sorted(runs) == [first, second]
    read = [json.loads(line) for line in marks.read_text().splitlines()]
    assert sorted((m["job"], m["run"]) for m in read) == [
        (first, runs[first].id),
        (second, runs[second].id),
    ]
    # while the runs went on the Secret held one entry per job, and the schedule's name
    entries = seen["recorded"]
    assert entries.pop("schedule") == "rr-1"
    assert {k: json.loads(v)["run"] for k, v in entries.items()} == {
        first: runs[first].id,
        second: runs[second].id,
    }
    # the runs ended: their tokens are revoked, and the schedule gone: the secret deleted
    for entry in entries.values():
        with admin.with_key(json.loads(entry)["token"]) as dead, pytest.raises(AuthenticationError):
            dead.get_run(runs[first].id)
    assert stores.k8s == {}
    assert api.requests("DELETE", f"/api/v1/namespaces/kubeflow/secrets/{secret}")


def test_follow_removes_an_ended_runs_entry_and_what_a_follower_before_left(
    write_pipeline: Callable[..., str],
    kfp: tuple[StandIn, SecretStores, KubeflowEngine],
    admin: Client,
    app_url: str,
) -> None:
    _, stores, engine = kfp
    target = write_pipeline(FLOW)
    jobs, secret = _schedule_kfp(kfp, target, admin, app_url)
    stores.k8s[("kubeflow", secret)]["r-0"] = "eyJydW4iOiAxfQ=="  # a follower before's
    first, second = jobs.start("r-1", "RUNNING"), jobs.start("r-2", "RUNNING")
    states: list[set[str]] = []

    def look() -> None:
        states.append(set(stores.k8s_values("kubeflow", secret)))

    done = follow_schedule(engine, target, "rr-1", admin, interval=0, sleep=Script(
        lambda: (look(), jobs.move(first, "SUCCEEDED")),
        lambda: (look(), jobs.move(second, "CANCELED")),
        lambda: (look(), setattr(jobs, "state", "DISABLED")),
        lambda: (look(), setattr(jobs, "gone", True)),
    ))  # fmt: skip
    assert states == [
        {"schedule", first, second},
        {"schedule", second},
        {"schedule"},
        {"schedule"},
    ]
    assert [r.state for r in done.runs] == ["succeeded", "cancelled"]
    assert done.secret == secret
    assert stores.k8s == {}


def test_follow_warns_once_when_the_schedules_secret_is_missing_and_writes_it_once_back(
    write_pipeline: Callable[..., str],
    kfp: tuple[StandIn, SecretStores, KubeflowEngine],
    admin: Client,
    app_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The secret deleted by hand: every poll tries to write it again, and the follower says so
    once (naming the secret and how to make it again), not at every poll."""
    _, stores, engine = kfp
    target = write_pipeline(FLOW)
    jobs, secret = _schedule_kfp(kfp, target, admin, app_url)
    key = ("kubeflow", secret)
    del stores.k8s[key]
    first = jobs.start("r-1", "RUNNING")
    states: list[set[str] | None] = []

    def look() -> None:
        states.append(set(stores.k8s_values(*key)) if key in stores.k8s else None)

    def make_again() -> None:
        stores.k8s[key] = {}

    with caplog.at_level(logging.WARNING, "funade.pipelines.follow"):
        done = follow_schedule(engine, target, "rr-1", admin, interval=0, sleep=Script(
            look,
            look,
            make_again,
            lambda: (look(), jobs.move(first, "SUCCEEDED")),
            lambda: (look(), setattr(jobs, "gone", True)),
        ))  # fmt: skip
    warned = [r.getMessage() for r in caplog.records if r.name == "funade.pipelines.follow"]
    assert warned == [missing_secret("kubeflow", secret, engine.schedule_path("rr-1"))]
    assert warned[0].startswith(f"The per-schedule secret {secret} of schedule ")
    assert f"kubectl create secret generic {secret} --namespace NAMESPACE" in warned[0]
    assert states == [None, None, {"schedule", first}, {"schedule"}], "written once made again"
    assert [r.state for r in done.runs] == ["succeeded"]


def test_on_vertex_follow_writes_versions_and_destroys_the_ones_before(
    write_pipeline: Callable[..., str],
    vertex: tuple[StandIn, SecretStores, VertexEngine],
    admin: Client,
    app_url: str,
) -> None:
    """The step's own reading (`resolve_schedule_token` with Secret Manager's `latest`) waits
    in a thread while the follower records the job; every version but the newest is
    destroyed, so an ended run's token is in no enabled version."""
    api, stores, engine = vertex
    target = write_pipeline(FLOW)
    jobs, secret = _schedule_vertex(vertex, target, admin, app_url)
    first, second = (jobs.start(n, "PIPELINE_STATE_RUNNING") for n in ("flow-1", "flow-2"))
    environ = _env(_container(jobs.body))
    got: dict[str, dict[str, str]] = {}
    with httpx.Client() as http:
        fetch = latest_fetch(http, api.url)

        def step(job: str) -> None:
            got[job] = resolve_schedule_token(environ, job.rsplit("/", 1)[-1], fetch_gsm=fetch)

        threads = [threading.Thread(target=step, args=(job,)) for job in (first, second)]
        for thread in threads:
            thread.start()
        seen: list[dict[str, Any] | None] = []

        def wait_steps() -> None:
            for thread in threads:
                thread.join(timeout=60)
            seen.append(stores.gsm_latest(secret))
            jobs.move(first, "PIPELINE_STATE_SUCCEEDED")
            jobs.move(second, "PIPELINE_STATE_SUCCEEDED")

        def end() -> None:
            seen.append(stores.gsm_latest(secret))
            jobs.gone = True

        done = follow_schedule(engine, target, SCHEDULE, admin, interval=0,
                               sleep=Script(wait_steps, end))  # fmt: skip
    runs = {r.runner["job"]: r for r in done.runs}
    for job in (first, second):
        assert got[job]["FUNADE_RUN_ID"] == str(runs[job].id)
    assert got[first]["FUNADE_API_KEY"] != got[second]["FUNADE_API_KEY"]
    assert seen[0] is not None
    assert seen[0]["schedule"] == SCHEDULE
    assert set(seen[0]["jobs"]) == {"flow-1", "flow-2"}
    assert seen[1] == {"schedule": SCHEDULE, "jobs": {}}
    assert secret not in stores.gsm  # deleted with the schedule
    destroyed = api.requests("POST", rf"/v1/{secret}/versions/[0-9]+:destroy")
    added = api.requests("POST", rf"/v1/{secret}:addVersion")
    assert len(destroyed) == len(added) - 1


# -- the step's waiting, and what it refuses -------------------------------------------------


def test_a_step_whose_token_never_comes_names_the_schedule_the_job_and_the_fix(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "mounted"
    folder.mkdir()
    (folder / "schedule").write_text("rr-1")
    (folder / "r-2").write_text(json.dumps({"run": 9, "token": "another job's"}))
    clock = iter(range(0, 10_000, 30))
    with pytest.raises(AuthenticationError) as caught:
        wait_for_token(
            read_mounted(folder, "r-1"),
            job="r-1",
            secret="funade-schedule-0123456789ab",
            pipeline="flow",
            engine="kubeflow",
            timeout=600,
            sleep=lambda _s: None,
            clock=lambda: next(clock),
        )
    assert str(caught.value) == (
        "Job r-1 of schedule rr-1 got no funade run token in 600 s: nothing follows the "
        "schedule to record its runs (its secret funade-schedule-0123456789ab has no entry "
        "for the job). Keep `funade pipeline follow FILE:flow rr-1 --target kubeflow ...` "
        f"running for the schedule (or give the steps longer with {WAIT_ENV})."
    )
    assert caught.value.field == TOKENS_ENV


def test_the_step_command_fails_with_the_message_when_no_token_comes(
    write_pipeline: Callable[..., str],
    kfp: tuple[StandIn, SecretStores, KubeflowEngine],
    admin: Client,
    app_url: str,
    tmp_path: Path,
) -> None:
    target = write_pipeline(FLOW)
    jobs, secret = _schedule_kfp(kfp, target, admin, app_url)
    folder = tmp_path / "mounted"
    folder.mkdir()
    step = _step_process(target, jobs.body, "r-9", folder, tmp_path / "marks", app_url, "0")
    _, err = step.communicate(timeout=120)
    assert step.returncode == 2, err  # the CLI's exit code for an error it names
    assert "Job r-9 of the schedule of pipeline 'flow' got no funade run token in 0 s" in err
    assert f"its secret {secret} has no entry" in " ".join(err.split())
    assert "funade pipeline follow FILE:flow SCHEDULE --target kubeflow" in " ".join(err.split())


@pytest.mark.parametrize(
    ("changes", "field", "start"),
    [
        ({WAIT_ENV: "-1"}, WAIT_ENV, "FUNADE_TOKEN_WAIT '-1' is not a number of seconds"),
        ({WAIT_ENV: "soon"}, WAIT_ENV, "FUNADE_TOKEN_WAIT 'soon' is not a number of seconds"),
        ({TOKENS_ENV: "/etc"}, TOKENS_ENV, "FUNADE_SCHEDULE_TOKENS '/etc' is not where"),
        ({SECRET_ENV: "db-password"}, SECRET_ENV, "'db-password' is not the name of a funade"),
    ],
)
def test_bad_settings_of_a_scheduled_step_are_named(
    changes: dict[str, str], field: str, start: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        resolve_schedule_token(_environ(tmp_path, **changes), "r-1")
    assert str(caught.value).startswith(start)
    assert caught.value.field == field


def test_a_malformed_entry_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r-1").write_text("{}")
    with pytest.raises(InvalidInputError) as caught:
        resolve_schedule_token(_environ(tmp_path), "r-1")
    assert str(caught.value).startswith(
        "The entry for job r-1 in the schedule's secret is not a run's id and token."
    )


def test_job_keys() -> None:
    assert job_key("5f0c2a4e-1b2c-4d5e-8f90-0123456789ab") == "5f0c2a4e-1b2c-4d5e-8f90-0123456789ab"
    assert job_key(f"{PARENT}/pipelineJobs/flow-20261207030000") == "flow-20261207030000"
    for bad in ("", "schedule", "../x", "a/b", f"{PARENT}/pipelineJobs/..", ".x", "a\n"):
        with pytest.raises(InvalidInputError) as caught:
            job_key(bad)
        assert caught.value.field == "job"


def test_a_schedule_whose_steps_get_a_token_needs_funades_address(
    write_pipeline: Callable[..., str],
    kfp: tuple[StandIn, SecretStores, KubeflowEngine],
    admin: Client,
) -> None:
    api, stores, engine = kfp
    with pytest.raises(InvalidInputError) as caught:
        submit(engine, write_pipeline(FLOW), SubmitOptions(schedule=CRON), admin)
    assert caught.value.field == "funade-url"
    assert str(caught.value).endswith("(or --no-step-token: the steps then cannot call funade).")
    assert api.seen == []
    options = SubmitOptions(schedule=CRON, step_token=False)
    assert submit(engine, write_pipeline(FLOW), options, admin).job == "rr-1"
    assert stores.k8s == {}  # no token for the steps: no secret
    (sent,) = api.requests("POST", "/apis/v2beta1/recurringruns")
    assert "funade_job" not in json.dumps(sent.body)


def test_a_steps_own_input_named_funade_job_reaches_it_outside_schedules(
    write_pipeline: Callable[..., str], cli: Callable[..., Any], tmp_path: Path
) -> None:
    """Only a scheduled step's --job drops the `funade_job` input; other steps keep theirs."""
    import yaml

    from funade.pipelines.kfpir import compile_kfp
    from funade.pipelines.loader import load_pipeline

    target = write_pipeline(
        """
@funade.step
def load(funade_job: int) -> float:
    return funade_job * 2.0


@funade.pipeline
def flow(n: int = 3):
    load(n)
"""
    )
    spec = next(yaml.safe_load_all(compile_kfp(load_pipeline(target), target=target)))
    args = spec["deploymentSpec"]["executors"]["exec-load"]["container"]["args"]
    out = tmp_path / "out.txt"
    executor_input = {
        "inputs": {"parameterValues": {"funade_job": 3.0}},
        "outputs": {"parameters": {"output": {"outputFile": str(out)}}},
    }
    result = cli(
        "pipeline", "step", *[json.dumps(executor_input) if a == "{{$}}" else a for a in args]
    )
    assert result.code == 0, result.err
    assert out.read_text() == "6.0"
