"""Prometheus metrics of pipelines, read from the store when scraped (``GET /metrics``).

The store is the source of truth, so every control plane answers the same and nothing is lost
on a restart; the queries are aggregates over indexed columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from funade.pipelines.states import FINISHED
from funade.store import Database
from funade.store.schema import PipelineRun, PipelineSchedule, PipelineStep, Project

__all__ = ["PipelineCollector"]


class PipelineCollector(Collector):
    """Every series is labelled with its project: pipeline names are unique within a project
    only, and a global key's scrape would add two projects' ``training`` into one series."""

    def __init__(self, db: Database, project_id: int | None = None) -> None:
        self.db = db
        self.project_id = project_id
        """Only this project's pipelines (a project's key); None: all (a global key)."""

    def _runs(self, query: Any) -> Any:
        query = query.join(Project, Project.id == PipelineRun.project_id)
        if self.project_id is None:
            return query
        return query.where(PipelineRun.project_id == self.project_id)

    def collect(self) -> Iterator[Metric]:
        by_pipeline = ["project", "pipeline"]
        runs = CounterMetricFamily(
            "funade_pipeline_runs",
            "Finished pipeline runs, by pipeline and final state.",
            labels=[*by_pipeline, "state"],
        )
        active = GaugeMetricFamily(
            "funade_pipeline_runs_active",
            "Runs queued or running now.",
            labels=[*by_pipeline, "state"],
        )
        breaches = CounterMetricFamily(
            "funade_pipeline_slo_breaches",
            "Runs that took longer than their pipeline's max_duration.",
            labels=by_pipeline,
        )
        last_success = GaugeMetricFamily(
            "funade_pipeline_last_success_timestamp_seconds",
            "When the pipeline's latest successful run finished (alert on staleness).",
            labels=by_pipeline,
        )
        steps = CounterMetricFamily(
            "funade_pipeline_steps",
            "Finished step instances, by pipeline, step and state (cached: a cache hit).",
            labels=[*by_pipeline, "step", "state"],
        )
        seconds = CounterMetricFamily(
            "funade_pipeline_step_seconds",
            "Seconds spent in steps that ran (not cache hits), by pipeline and step.",
            labels=[*by_pipeline, "step"],
        )
        schedules = GaugeMetricFamily(
            "funade_pipeline_schedules",
            "Schedules, active or paused.",
            labels=["project", "state"],
        )
        with self.db.read() as session:
            breached: dict[tuple[str, str], int] = {}
            for project, pipeline, state, count, slo in session.execute(
                self._runs(
                    select(
                        Project.name,
                        PipelineRun.pipeline,
                        PipelineRun.state,
                        func.count(),
                        func.sum(case((PipelineRun.slo_breached.is_(True), 1), else_=0)),
                    )
                ).group_by(Project.name, PipelineRun.pipeline, PipelineRun.state)
            ):
                if state in FINISHED:
                    runs.add_metric([project, pipeline, state], count)
                else:
                    active.add_metric([project, pipeline, state], count)
                if slo:  # rows are by pipeline and state: one series per pipeline
                    key = (project, pipeline)
                    breached[key] = breached.get(key, 0) + int(slo)
            for key, count in sorted(breached.items()):
                breaches.add_metric(list(key), count)
            for project, pipeline, finished in session.execute(
                self._runs(
                    select(Project.name, PipelineRun.pipeline, func.max(PipelineRun.finished_at))
                )
                .where(PipelineRun.state == "succeeded")
                .group_by(Project.name, PipelineRun.pipeline)
            ):
                if finished is not None:
                    last_success.add_metric([project, pipeline], _aware(finished).timestamp())
            durations: dict[tuple[str, str, str], float] = {}
            for project, pipeline, node, state, count in session.execute(
                self._runs(
                    select(
                        Project.name,
                        PipelineRun.pipeline,
                        PipelineStep.node,
                        PipelineStep.state,
                        func.count(),
                    ).join(PipelineRun, PipelineRun.id == PipelineStep.run_id)
                )
                .where(PipelineStep.finished_at.is_not(None))
                .group_by(Project.name, PipelineRun.pipeline, PipelineStep.node, PipelineStep.state)
            ):
                steps.add_metric([project, pipeline, node, state], count)
            for project, pipeline, node, started, finished in session.execute(
                self._runs(
                    select(
                        Project.name,
                        PipelineRun.pipeline,
                        PipelineStep.node,
                        PipelineStep.started_at,
                        PipelineStep.finished_at,
                    ).join(PipelineRun, PipelineRun.id == PipelineStep.run_id)
                ).where(
                    PipelineStep.state.in_(("succeeded", "failed")),
                    PipelineStep.started_at.is_not(None),
                    PipelineStep.finished_at.is_not(None),
                )
            ):
                if started is None or finished is None:
                    continue
                spent = (_aware(finished) - _aware(started)).total_seconds()
                where = (project, pipeline, node)
                durations[where] = durations.get(where, 0.0) + max(0.0, spent)
            for where, total in sorted(durations.items()):
                seconds.add_metric(list(where), total)
            schedule_query = select(Project.name, PipelineSchedule.paused, func.count()).join(
                Project, Project.id == PipelineSchedule.project_id
            )
            if self.project_id is not None:
                schedule_query = schedule_query.where(
                    PipelineSchedule.project_id == self.project_id
                )
            for project, paused, count in session.execute(
                schedule_query.group_by(Project.name, PipelineSchedule.paused)
            ):
                schedules.add_metric([project, "paused" if paused else "active"], count)
        yield from (runs, active, breaches, last_success, steps, seconds, schedules)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
