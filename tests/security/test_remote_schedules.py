"""The record of remote schedules (`POST/GET /api/v1/projects/{p}/remote-schedules`): another
project's schedules are not seen, a read-only key may not write, and hostile engine ids, console
links and unknown fields are refused naming the field, nothing stored. (No key: a 401, as every
route, in tests/api/test_route_auth.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from funade.client import Client
from funade.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from funade.pipelines.schemas import RemoteScheduleIn

VERTEX_ID = "projects/acme-ml/locations/europe-west4/schedules/7"


def _made(**fields: Any) -> RemoteScheduleIn:
    return RemoteScheduleIn.model_validate(
        {"target": "vertex", "engine_id": VERTEX_ID, "pipeline": "flow", **fields}
    )


def test_schedules_are_kept_per_project(admin: Client, key_for: Any) -> None:
    admin.create_project("team-b")
    admin.record_remote_schedule(_made(), project="team-b")
    assert admin.list_remote_schedules() == []
    (theirs,) = admin.list_remote_schedules(project="team-b")
    assert theirs.project == "team-b"
    mine = key_for(["read", "write"])  # another project's names are not even seen
    with pytest.raises(NotFoundError):
        mine.list_remote_schedules(project="team-b")
    with pytest.raises(NotFoundError):
        mine.record_remote_schedule(_made(last_job="x"), project="team-b")
    assert admin.list_remote_schedules(project="team-b")[0].last_job is None
    with pytest.raises(NotFoundError):
        admin.list_remote_schedules(project="nowhere")


def test_a_read_only_key_may_list_but_not_record(admin: Client, key_for: Any) -> None:
    admin.record_remote_schedule(_made())
    reader = key_for(["read"])
    assert len(reader.list_remote_schedules()) == 1
    with pytest.raises(PermissionDeniedError) as caught:
        reader.record_remote_schedule(_made(last_job="x"))
    assert "write" in str(caught.value)
    assert admin.list_remote_schedules()[0].last_job is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"engine_id": "../../secrets/x"}, "engine_id"),
        ({"engine_id": "rr-1\n"}, "engine_id"),
        ({"engine_id": ""}, "engine_id"),
        ({"target": "airflow"}, "target"),
        ({"console": "javascript:alert(1)"}, "console"),
        ({"cron": "x" * 129}, "cron"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_records_are_refused_naming_the_field(
    admin: Client, fields: dict[str, Any], field: str
) -> None:
    body = {"target": "vertex", "engine_id": VERTEX_ID, "pipeline": "flow", **fields}
    with pytest.raises(InvalidInputError) as caught:
        admin._request("POST", f"{admin._p(None)}/remote-schedules", json=body)
    assert field in str(caught.value)
    assert admin.list_remote_schedules() == []
