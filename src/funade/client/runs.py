"""Pipeline runs: recorded, reported on, attempted, cancelled, launched on the control plane."""

from __future__ import annotations

from funade.api.schemas import (
    LaunchIn,
    Page,
    RunAttemptIn,
    RunEventsIn,
    RunEventsOut,
    RunIn,
    RunOut,
)
from funade.client.base import ClientBase

__all__ = ["RunsAPI"]


class RunsAPI(ClientBase):
    """The client's calls of runs (mixed into ``funade.client.Client``)."""

    def create_run(self, run: RunIn, *, project: str | None = None) -> RunOut:
        response = self._request(
            "POST", f"{self._p(project)}/runs", json=run.model_dump(mode="json")
        )
        return RunOut.model_validate(response.json())

    def list_runs(
        self,
        *,
        project: str | None = None,
        pipeline: str | None = None,
        state: str | None = None,
        schedule_id: int | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[RunOut]:
        return self._get(
            f"{self._p(project)}/runs",
            Page[RunOut],
            pipeline=pipeline,
            state=state,
            schedule_id=schedule_id,
            cursor=cursor,
            limit=limit,
        )

    def get_run(self, run_id: int, *, spec: bool = False) -> RunOut:
        return self._get(f"/api/v1/runs/{run_id}", RunOut, spec=spec or None)

    def report_run(self, run_id: int, events: RunEventsIn) -> RunEventsOut:
        """Report step records and run changes (with the run's own token): whether a cancel was
        requested, and the run once the report ended it."""
        response = self._request(
            "POST", f"/api/v1/runs/{run_id}/events", json=events.model_dump(mode="json")
        )
        return RunEventsOut.model_validate(response.json())

    def start_attempt(self, run_id: int, attempt: RunAttemptIn) -> RunOut:
        """Start the run's next attempt; the answer holds its new token."""
        response = self._request(
            "POST", f"/api/v1/runs/{run_id}/attempts", json=attempt.model_dump(mode="json")
        )
        return RunOut.model_validate(response.json())

    def cancel_run(self, run_id: int) -> RunOut:
        return RunOut.model_validate(self._request("POST", f"/api/v1/runs/{run_id}/cancel").json())

    def run_logs(self, run_id: int, *, step: str | None = None) -> str:
        params = {"step": step} if step else {}
        return self._request("GET", f"/api/v1/runs/{run_id}/logs", params=params).text

    def launch_run(self, launch: LaunchIn, *, project: str | None = None) -> RunOut:
        """Have the control plane run a pipeline whose code is on its machine."""
        response = self._request(
            "POST", f"{self._p(project)}/runs/launch", json=launch.model_dump(mode="json")
        )
        return RunOut.model_validate(response.json())

    def resume_run_remote(self, run_id: int) -> RunOut:
        """Have the control plane resume the run on its machine."""
        return RunOut.model_validate(self._request("POST", f"/api/v1/runs/{run_id}/resume").json())
