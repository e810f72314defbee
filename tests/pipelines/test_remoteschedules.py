"""funade's record of the schedules it made on Vertex AI and Kubeflow: recorded and updated
through the API (an upsert by target and engine id), listed by project, by a real control
plane on a free port (SQLite and, where it runs, PostgreSQL through the store tests)."""

from __future__ import annotations

from typing import Any

import httpx

from funade.client import Client
from funade.pipelines.schemas import RemoteScheduleIn

VERTEX_ID = "projects/acme-ml/locations/europe-west4/schedules/7"


def _made(**fields: Any) -> RemoteScheduleIn:
    return RemoteScheduleIn.model_validate(
        {"target": "vertex", "engine_id": VERTEX_ID, "pipeline": "flow", **fields}
    )


def test_a_schedule_is_recorded_updated_and_listed(admin: Client) -> None:
    made = admin.record_remote_schedule(
        _made(console="https://console.cloud.google.com/x", cron="0 3 * * *", source="f.py:flow")
    )
    assert (made.target, made.engine_id, made.cron, made.pipeline) == (
        "vertex", VERTEX_ID, "0 3 * * *", "flow",
    )  # fmt: skip
    assert made.created_by is not None
    assert made.last_job is None
    assert made.ended_at is None
    seen = admin.record_remote_schedule(_made(last_job=f"{VERTEX_ID[:-12]}pipelineJobs/j-1"))
    assert seen.id == made.id
    assert seen.last_job == f"{VERTEX_ID[:-12]}pipelineJobs/j-1"
    assert seen.last_seen_at is not None
    assert seen.cron == "0 3 * * *"  # fields not given stay
    ended = admin.record_remote_schedule(_made(ended=True, reason="deleted on vertex"))
    assert (ended.ended_reason, ended.ended_at is not None) == ("deleted on vertex", True)
    again = admin.record_remote_schedule(_made(ended=True, reason="later"))
    assert again.ended_at == ended.ended_at
    assert again.ended_reason == "deleted on vertex"
    other = admin.record_remote_schedule(_made(target="kubeflow", engine_id="rr-1"))
    listed = admin.list_remote_schedules()
    assert [r.id for r in listed] == [other.id, made.id]


def test_the_dashboards_schedules_page_lists_them(
    admin: Client, admin_key: str, app_url: str
) -> None:
    reader = admin.create_key("reader", ["read"], project="default").key
    with httpx.Client(base_url=app_url, headers={"origin": app_url}) as http:
        assert http.post("/signin", data={"key": reader, "next": "/"}).status_code == 303
        assert "None recorded in this project." in http.get("/schedules").text
        admin.record_remote_schedule(
            _made(target="kubeflow", engine_id="rr-1", cron="0 3 * * *", last_job="r-<1>",
                  console="https://kfp.example/#/recurringrun/details/rr-1")
        )  # fmt: skip
        page = http.get("/schedules")
    assert page.status_code == 200
    assert 'href="https://kfp.example/#/recurringrun/details/rr-1"' in page.text
    assert "r-&lt;1&gt;" in page.text  # escaped
    assert "<code>0 3 * * *</code>" in page.text
