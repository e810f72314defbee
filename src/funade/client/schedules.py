"""Schedules: funade's own, and the records of those made on Vertex AI or Kubeflow."""

from __future__ import annotations

from typing import Any

from funade.api.schemas import (
    ScheduleIn,
    ScheduleOut,
    SchedulePatch,
)
from funade.client.base import ClientBase
from funade.pipelines.schemas import RemoteScheduleIn, RemoteScheduleOut

__all__ = ["SchedulesAPI"]


class SchedulesAPI(ClientBase):
    """The client's calls of schedules (mixed into ``funade.client.Client``)."""

    def create_schedule(self, schedule: ScheduleIn, *, project: str | None = None) -> ScheduleOut:
        response = self._request(
            "POST", f"{self._p(project)}/schedules", json=schedule.model_dump(mode="json")
        )
        return ScheduleOut.model_validate(response.json())

    def list_schedules(self, *, project: str | None = None) -> list[ScheduleOut]:
        rows = self._request("GET", f"{self._p(project)}/schedules").json()
        return [ScheduleOut.model_validate(r) for r in rows]

    def get_schedule(self, name: str, *, project: str | None = None) -> ScheduleOut:
        return self._get(f"{self._p(project)}/schedules/{name}", ScheduleOut)

    def update_schedule(
        self, name: str, *, project: str | None = None, **changes: Any
    ) -> ScheduleOut:
        """Change fields of a schedule, e.g. ``paused=True`` or ``cron="0 4 * * *"``."""
        body = SchedulePatch(**changes).model_dump(mode="json", exclude_unset=True)
        response = self._request("PATCH", f"{self._p(project)}/schedules/{name}", json=body)
        return ScheduleOut.model_validate(response.json())

    def delete_schedule(self, name: str, *, project: str | None = None) -> None:
        self._request("DELETE", f"{self._p(project)}/schedules/{name}")

    def record_remote_schedule(
        self, schedule: RemoteScheduleIn, *, project: str | None = None
    ) -> RemoteScheduleOut:
        """Record a schedule made on Vertex AI or Kubeflow, or update its record."""
        response = self._request(
            "POST",
            f"{self._p(project)}/remote-schedules",
            json=schedule.model_dump(mode="json", exclude_none=True),
        )
        return RemoteScheduleOut.model_validate(response.json())

    def list_remote_schedules(self, *, project: str | None = None) -> list[RemoteScheduleOut]:
        rows = self._request("GET", f"{self._p(project)}/remote-schedules").json()
        return [RemoteScheduleOut.model_validate(r) for r in rows]
