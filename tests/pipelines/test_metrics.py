"""Pipeline metrics read from the store: one series per label set, as Prometheus requires."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest

from funade.pipelines.metrics import PipelineCollector
from funade.projects import ensure_project
from funade.store import Database
from funade.store.schema import PipelineRun


def test_slo_breaches_are_one_series_per_pipeline(database: Database) -> None:
    """Breaching runs that ended in different states add up in one series (they were one
    sample per state, with the same labels: a scrape Prometheus refuses)."""
    with database.session() as session:
        project = ensure_project(session, "default")
        for state in ("succeeded", "failed", "failed", "running"):
            session.add(
                PipelineRun(
                    project_id=project.id,
                    pipeline="train",
                    spec={},
                    state=state,
                    slo_breached=True,
                    finished_at=datetime.now(UTC) if state != "running" else None,
                )
            )
    registry = CollectorRegistry()
    registry.register(PipelineCollector(database))
    lines = generate_latest(registry).decode().splitlines()
    breaches = [line for line in lines if line.startswith("funade_pipeline_slo_breaches_total")]
    assert breaches == [
        'funade_pipeline_slo_breaches_total{pipeline="train",project="default"} 4.0'
    ]


def test_the_same_pipeline_name_in_two_projects_is_two_series(database: Database) -> None:
    """Pipeline names are unique within a project only: a global key's scrape kept the two
    projects' ``train`` apart by their project label, and a project's key sees its own."""
    with database.session() as session:
        ids = {}
        for name, runs in (("default", 2), ("fraud", 3)):
            project = ensure_project(session, name)
            ids[name] = project.id
            for _ in range(runs):
                session.add(
                    PipelineRun(
                        project_id=project.id,
                        pipeline="train",
                        spec={},
                        state="succeeded",
                        finished_at=datetime.now(UTC),
                    )
                )
    everything = _scrape(PipelineCollector(database))
    assert [line for line in everything if line.startswith("funade_pipeline_runs_total")] == [
        'funade_pipeline_runs_total{pipeline="train",project="default",state="succeeded"} 2.0',
        'funade_pipeline_runs_total{pipeline="train",project="fraud",state="succeeded"} 3.0',
    ]
    fraud = _scrape(PipelineCollector(database, ids["fraud"]))
    assert [line for line in fraud if line.startswith("funade_pipeline_runs_total")] == [
        'funade_pipeline_runs_total{pipeline="train",project="fraud",state="succeeded"} 3.0'
    ]
    assert not [line for line in fraud if 'project="default"' in line]


def _scrape(collector: PipelineCollector) -> list[str]:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode().splitlines()
