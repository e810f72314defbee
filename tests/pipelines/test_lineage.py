"""True lineage: a run, and every version a step of it registers, record the project's own git
state (the repository of the pipeline's file, not funade's), also for runs the control plane
starts; a resume after a code change records the new commit for the steps it re-runs; and
``--require-clean`` refuses a dirty tree. Real git repositories, real runs, a real control
plane."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from funade.api.schemas import LaunchIn, RunOut, ScheduleIn
from funade.client import Client
from funade.errors import ConflictError
from funade.pipelines.runs import resume_run, run_pipeline
from funade.pipelines.schedules import Launcher, Scheduler, queued_name
from funade.settings import Settings
from funade.store import Database
from funade.store.schema import PipelineRun, PipelineSchedule
from tests.conftest import Result
from tests.pipelines.test_schedules import finished, plane
from tests.registry.test_lineage import git

__all__ = ["plane"]  # the control plane that starts runners, a fixture of test_schedules

REMOTE = "https://alice:ghp_secret@github.example.com/org/churn.git"

PIPELINE = """
import numpy as np
import funade

class Doubler:
    def load(self, path):
        pass

    def predict(self, x):
        return x * 2

@funade.step
def load(n: int) -> int:
    return n

@funade.step
def gate(x: int, limit: int) -> int:
    if x > limit:
        raise ValueError(f"{x} is over {limit}")
    return x

@funade.step(cache=False)
def register(x: int) -> int:
    version = funade.log_model(Doubler(), "doubler", sample_input=np.ones((2, 3)), progress=False)
    return version.version

@funade.pipeline(name=NAME, permissions=["register:doubler"])
def training(n: int = 2, limit: int = 10) -> None:
    register(gate(load(n), limit))
"""


def make_repo(root: Path, name: str = "training") -> str:
    """A git repository with the pipeline committed on main; the run target."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--initial-branch=main")
    (root / "train.py").write_text(PIPELINE.replace("NAME", repr(name)))
    (root / ".gitignore").write_text("*.log\n")
    git(root, "add", "train.py", ".gitignore")
    git(root, "commit", "--quiet", "-m", "first")
    git(root, "remote", "add", "origin", REMOTE)
    return f"{root / 'train.py'}:training"


def commit(root: Path, message: str) -> str:
    git(root, "commit", "--quiet", "-am", message)
    return git(root, "rev-parse", "HEAD")


def funade_checkout() -> str:
    return git(Path(__file__).parent, "rev-parse", "--show-toplevel")


def test_a_run_and_the_version_a_step_registers_record_the_projects_repository(
    admin: Client, tmp_path: Path
) -> None:
    repo = tmp_path / "project"
    target = make_repo(repo)
    run = run_pipeline(target, client=admin)
    assert run.state == "succeeded", run.reason
    head = git(repo, "rev-parse", "HEAD")
    recorded = run.lineage["git"]
    assert recorded["commit"] == head
    assert (recorded["branch"], recorded["dirty"], recorded["diff_digest"]) == ("main", False, None)
    assert recorded["remote_url"] == "https://github.example.com/org/churn.git"
    assert recorded["root"] == str(repo)
    assert run.lineage["packages"]["numpy"]
    assert [(a["attempt"], a["git"]) for a in run.lineage["attempts"]] == [(1, recorded)]

    version = admin.get_version("doubler", 1)
    assert version.lineage["git"] == recorded  # not the step process's (funade's) checkout
    assert version.lineage["git"]["root"] != funade_checkout()
    assert version.lineage["run"]["id"] == run.id
    assert "ghp_secret" not in json.dumps(version.lineage) + json.dumps(run.lineage)


def test_a_dirty_tree_is_recorded_with_a_digest_and_refused_with_require_clean(
    admin: Client, tmp_path: Path
) -> None:
    repo = tmp_path / "project"
    target = make_repo(repo)
    (repo / "helper.py").write_text("SCALE = 2\n")  # untracked, not ignored
    (repo / "debug.log").write_text("ignored\n")
    run = run_pipeline(target, client=admin)
    assert run.state == "succeeded", run.reason
    recorded = run.lineage["git"]
    assert (recorded["dirty"], recorded["changed"]) == (True, ["helper.py"])
    assert recorded["diff_digest"].startswith("sha256:")
    assert admin.get_version("doubler", 1).lineage["git"] == recorded

    (repo / "helper.py").write_text("SCALE = 3\n")
    again = run_pipeline(target, client=admin)
    assert again.lineage["git"]["diff_digest"] != recorded["diff_digest"]

    with pytest.raises(ConflictError) as info:
        run_pipeline(target, client=admin, require_clean=True)
    assert str(info.value).startswith(
        f"pipeline 'training': the git tree at {repo} has uncommitted changes (helper.py), and "
        "--require-clean runs only committed code. Commit them"
    )
    assert [r.id for r in admin.list_runs().items] == [again.id, run.id]  # nothing recorded
    git(repo, "add", "helper.py")
    commit(repo, "helper")
    clean = run_pipeline(target, client=admin, require_clean=True)
    assert clean.state == "succeeded"
    assert clean.lineage["git"]["dirty"] is False


def test_require_clean_on_the_command_line(cli: Callable[..., Result], tmp_path: Path) -> None:
    repo = tmp_path / "project"
    target = make_repo(repo)
    (repo / "train.py").write_text((repo / "train.py").read_text() + "\n# tuning\n")
    refused = cli("pipeline", "run", target, "--require-clean")
    assert refused.code == 2
    text = " ".join(refused.err.split())
    assert "error: pipeline 'training': the git tree at" in text
    assert (
        "has uncommitted changes (train.py), and --require-clean runs only committed code" in text
    )
    assert "Commit them (or `git stash --include-untracked`" in text
    assert json.loads(cli("runs", "list", "--json").out) == []
    commit(repo, "tuning")
    assert cli("pipeline", "run", target, "--require-clean").code == 0
    shown = cli("runs", "show", "1")
    assert f"git: {git(repo, 'rev-parse', 'HEAD')[:12]}" in shown.out


def test_a_resume_after_a_fix_records_the_new_commit_for_the_steps_it_reruns(
    admin: Client, tmp_path: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "project"
    target = make_repo(repo)
    first = git(repo, "rev-parse", "HEAD")
    failed = run_pipeline(target, client=admin, params={"limit": 1})
    assert failed.state == "failed"
    source = repo / "train.py"
    source.write_text(source.read_text().replace("x > limit", "x > limit * 10"))
    fixed = commit(repo, "fix the gate")

    run = resume_run(failed.id, client=admin)
    assert (run.state, run.attempt) == ("succeeded", 2), run.reason
    assert [(a["attempt"], a["git"]["commit"]) for a in run.lineage["attempts"]] == [
        (1, first),
        (2, fixed),
    ]
    assert run.lineage["git"]["commit"] == fixed  # the newest attempt's
    ran_in = {s.instance: s.run_attempt for s in run.steps}
    assert ran_in == {"load": 1, "gate": 2, "register": 2}
    version = admin.get_version("doubler", 1)
    assert version.lineage["git"]["commit"] == fixed
    assert version.lineage["run"]["attempt"] == 2
    monkeypatch.setenv("FUNADE_URL", admin.url)  # the command line, on the same control plane
    monkeypatch.setenv("FUNADE_API_KEY", admin.api_key)
    shown = " ".join(cli("runs", "show", str(run.id)).out.split())
    assert f"git (attempt 1): {first[:12]}" in shown
    assert f"git (attempt 2): {fixed[:12]}" in shown


def wait_for(client: Client, run_id: int, timeout: float = 60) -> RunOut:
    deadline = time.monotonic() + timeout
    run = client.get_run(run_id)
    while run.state in ("queued",) and time.monotonic() < deadline:
        time.sleep(0.1)
        run = client.get_run(run_id)
    return finished(client, run_id, timeout)


def runner_log(settings: Settings, run: RunOut) -> str:
    log = settings.home / "runs" / str(run.id) / "runner.log"
    return run.reason + "\n" + (log.read_text() if log.exists() else "")


def test_runs_the_control_plane_starts_record_lineage_under_the_pipelines_name(
    plane: tuple[Client, Launcher], public_dir: Path, database: Database, settings: Settings
) -> None:
    """Launched and scheduled runs run as their project's user, from its sandbox home, on a
    checkout that user does not own: they record its git state and package versions as a
    command-line run does, and are filed under the pipeline's name (not the function's, not
    the schedule's)."""
    admin, launcher = plane
    repo = public_dir / "project"
    target = make_repo(repo, name="churn-training")
    head = git(repo, "rev-parse", "HEAD")

    launched = admin.launch_run(LaunchIn(source=target))
    assert launched.pipeline == "training"  # a guess until its runner compiles the pipeline
    run = wait_for(admin, launched.id)
    assert run.state == "succeeded", runner_log(settings, run)
    assert run.pipeline == "churn-training"
    recorded = run.lineage["git"]
    assert (recorded["commit"], recorded["branch"], recorded["dirty"]) == (head, "main", False)
    assert recorded["remote_url"] == "https://github.example.com/org/churn.git"
    assert run.lineage["packages"]["funade"]
    assert run.lineage["python"]
    assert admin.get_version("doubler", 1).lineage["git"] == recorded

    admin.create_schedule(ScheduleIn(name="every-minute", source=target, cron="* * * * *"))
    with database.session() as session:  # as if it had been made two minutes ago
        row = session.scalars(select(PipelineSchedule)).one()
        row.created_at = datetime.now(UTC) - timedelta(minutes=2)
    (started,) = Scheduler(database, launcher.start).step()
    with database.read() as session:
        queued = session.get(PipelineRun, started.run_id)
        assert queued is not None
        assert queued.pipeline != "every-minute"
    scheduled = wait_for(admin, started.run_id)
    assert (scheduled.state, scheduled.trigger) == ("succeeded", "schedule"), runner_log(
        settings, scheduled
    )
    assert scheduled.pipeline == "churn-training"
    assert scheduled.lineage["git"]["commit"] == head
    assert scheduled.lineage["packages"]["numpy"]
    assert [r.id for r in admin.list_runs(pipeline="churn-training").items] == [
        scheduled.id,
        run.id,
    ]


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("/srv/churn/train.py:training", "training"),
        ("/srv/churn/train.py", "train"),
        ("pkg.flows:nightly", "nightly"),
        ("pkg.flows", "pkg.flows"),
    ],
)
def test_a_queued_run_is_filed_under_the_name_its_source_gives(source: str, name: str) -> None:
    assert queued_name(source) == name
