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
    assert breaches == ['funade_pipeline_slo_breaches_total{pipeline="train"} 4.0']
