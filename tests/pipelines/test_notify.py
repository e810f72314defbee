"""Webhook notifications, against a real HTTP receiver on a free local port."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from funade.errors import InvalidInputError
from funade.pipelines.notify import (
    Delivery,
    RunEvent,
    Webhook,
    check_webhooks,
    payload,
    redact_url,
    send,
)


@dataclass
class Receiver:
    """Records every POST; answers with scripted statuses per path (then 200), maybe slowly."""

    base: str = ""
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)

    def bodies(self, path: str) -> list[Any]:
        return [body for p, _, body in self.requests if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            path = self.path.split("?", 1)[0]
            rec.requests.append((self.path, dict(self.headers), body))
            time.sleep(rec.delays.get(path, 0.0))
            script = rec.statuses.get(path)
            status = script.pop(0) if script else 200
            reply = b"ok" if status < 400 else b"nope"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except OSError:  # the client gave up (timeout test)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    rec.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


FAILURE = RunEvent(
    event="failure",
    pipeline="nightly-train",
    run_id="r-42",
    state="failed",
    url="http://funade.example/pipelines/nightly-train/runs/r-42",
    started_at=datetime(2024, 5, 1, 3, 0, tzinfo=UTC),
    finished_at=datetime(2024, 5, 1, 3, 12, 3, tzinfo=UTC),
    duration_seconds=723.0,
    max_duration_seconds=None,
    failed_steps=["train", "evaluate"],
    message="train: ValueError: x < 0 & y > 1",
)
SUCCESS = replace(FAILURE, event="success", state="succeeded", failed_steps=[], message="")


# --- payloads ---------------------------------------------------------------------------------


def test_json_payload_is_flat_with_iso_times() -> None:
    body = payload(Webhook(url="https://example.com/hook"), FAILURE)
    assert body == {
        "source": "funade",
        "event": "failure",
        "pipeline": "nightly-train",
        "run_id": "r-42",
        "state": "failed",
        "url": "http://funade.example/pipelines/nightly-train/runs/r-42",
        "started_at": "2024-05-01T03:00:00+00:00",
        "finished_at": "2024-05-01T03:12:03+00:00",
        "duration_seconds": 723.0,
        "max_duration_seconds": None,
        "failed_steps": ["train", "evaluate"],
        "message": "train: ValueError: x < 0 & y > 1",
    }
    json.dumps(body)  # serialisable as is
    pending = replace(FAILURE, started_at=None, finished_at=None, duration_seconds=None)
    assert payload(Webhook(url="https://example.com/hook"), pending)["started_at"] is None


def test_slack_payload_is_block_kit() -> None:
    breach = replace(
        FAILURE,
        event="slo_breach",
        state="succeeded",
        failed_steps=[],
        max_duration_seconds=600.0,
        message="took 12m 3s, over its 10m limit",
    )
    body = payload(Webhook(url="https://hooks.slack.com/services/T/B/X", kind="slack"), breach)
    assert set(body) == {"text", "blocks"}
    link = "<http://funade.example/pipelines/nightly-train/runs/r-42|run r-42>"
    assert body["text"] == f"funade: Pipeline nightly-train breached its time limit ({link})"
    [block] = body["blocks"]
    assert block["type"] == "section"
    assert block["text"]["type"] == "mrkdwn"
    text = block["text"]["text"]
    assert text.startswith("*Pipeline nightly-train breached its time limit*\n")
    assert link in text
    assert "took 12m 3s (limit 10m 0s)" in text
    assert len(text) <= 3000
    # user text is escaped so it cannot inject Slack links or markup
    failed = payload(Webhook(url="https://hooks.slack.com/services/T/B/X", kind="slack"), FAILURE)
    text = failed["blocks"][0]["text"]["text"]
    assert "> train: ValueError: x &lt; 0 &amp; y &gt; 1" in text
    assert "failed steps: train, evaluate" in text


# --- send -------------------------------------------------------------------------------------


def test_send_posts_json_and_slack(receiver: Receiver) -> None:
    hooks = [
        Webhook(url=f"{receiver.base}/json"),
        Webhook(url=f"{receiver.base}/slack", kind="slack"),
    ]
    deliveries = send(hooks, FAILURE)
    assert deliveries == [
        Delivery(url=f"{receiver.base}/json", ok=True, status=200, error=None, attempts=1),
        Delivery(url=f"{receiver.base}/slack", ok=True, status=200, error=None, attempts=1),
    ]
    assert receiver.bodies("/json") == [payload(hooks[0], FAILURE)]
    assert receiver.bodies("/slack") == [payload(hooks[1], FAILURE)]
    _, headers, _ = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("funade/")


def test_send_filters_by_on(receiver: Receiver) -> None:
    hooks = [
        Webhook(url=f"{receiver.base}/failures-only", on=["failure"]),
        Webhook(url=f"{receiver.base}/all", on=["failure", "success", "slo_breach"]),
    ]
    assert [d.url for d in send(hooks, SUCCESS)] == [f"{receiver.base}/all"]
    assert [p for p, _, _ in receiver.requests] == ["/all"]
    assert send([Webhook(url=f"{receiver.base}/default")], SUCCESS) == []  # default: no success


def test_send_retries_a_500_then_succeeds(receiver: Receiver) -> None:
    receiver.statuses["/flaky"] = [500]
    [delivery] = send([Webhook(url=f"{receiver.base}/flaky")], FAILURE, backoff=0.01)
    assert delivery.ok
    assert delivery.status == 200
    assert delivery.attempts == 2
    assert len(receiver.bodies("/flaky")) == 2


def test_send_gives_up_after_retries(receiver: Receiver) -> None:
    receiver.statuses["/down"] = [503, 503, 503, 503]
    [delivery] = send([Webhook(url=f"{receiver.base}/down")], FAILURE, retries=2, backoff=0.01)
    assert delivery == Delivery(
        url=f"{receiver.base}/down", ok=False, status=503, error="HTTP 503: nope", attempts=3
    )


def test_send_does_not_retry_a_400(receiver: Receiver) -> None:
    receiver.statuses["/bad"] = [400]
    [delivery] = send([Webhook(url=f"{receiver.base}/bad")], FAILURE, backoff=0.01)
    assert delivery == Delivery(
        url=f"{receiver.base}/bad", ok=False, status=400, error="HTTP 400: nope", attempts=1
    )
    assert len(receiver.bodies("/bad")) == 1


def test_send_to_unreachable_port_reports_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    [delivery] = send([Webhook(url=url)], FAILURE, retries=1, backoff=0.01)
    assert not delivery.ok
    assert delivery.status is None
    assert delivery.attempts == 2
    assert delivery.error is not None
    assert delivery.error.startswith("ConnectError")


def test_send_times_out(receiver: Receiver) -> None:
    receiver.delays["/slow"] = 1.0
    started = time.monotonic()
    [delivery] = send([Webhook(url=f"{receiver.base}/slow")], FAILURE, timeout=0.2, retries=0)
    assert time.monotonic() - started < 0.9
    assert not delivery.ok
    assert delivery.status is None
    assert delivery.attempts == 1
    assert delivery.error is not None
    assert "Timeout" in delivery.error


def test_send_uses_given_client_and_leaves_it_open(receiver: Receiver) -> None:
    with httpx.Client() as client:
        [delivery] = send([Webhook(url=f"{receiver.base}/c")], FAILURE, client=client)
        assert delivery.ok
        assert not client.is_closed


def test_failure_log_does_not_leak_the_secret(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.statuses["/services/T000/SECRETPART"] = [404]
    url = f"{receiver.base}/services/T000/SECRETPART?token=hunter2"
    with caplog.at_level(logging.WARNING, logger="funade.pipelines.notify"):
        [delivery] = send([Webhook(url=url)], FAILURE)
    assert not delivery.ok
    assert delivery.url == f"{receiver.base}/services/..."
    assert receiver.requests[0][0] == "/services/T000/SECRETPART?token=hunter2"  # sent in full
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"{receiver.base}/services/..." in record.getMessage()
    assert "SECRETPART" not in caplog.text
    assert "hunter2" not in caplog.text


def test_redact_url() -> None:
    assert redact_url("https://hooks.slack.com/services/T0/B0/XYZ") == (
        "https://hooks.slack.com/services/..."
    )
    assert redact_url("https://user:pw@example.com:8443/hook?k=v") == (
        "https://example.com:8443/hook/..."
    )
    assert redact_url("http://example.com") == "http://example.com/"


# --- check_webhooks ---------------------------------------------------------------------------


def test_check_webhooks_accepts_and_defaults() -> None:
    hooks = check_webhooks(
        [
            {"url": "https://example.com/a"},
            {"url": "http://x/b", "kind": "slack", "on": ["success"]},
        ],
        where="notify",
    )
    assert hooks[0] == Webhook(
        url="https://example.com/a", kind="json", on=["failure", "slo_breach"]
    )
    assert hooks[1].kind == "slack"
    assert hooks[1].on == ["success"]
    assert check_webhooks(None, where="notify") == []


@pytest.mark.parametrize(
    ("raw", "field", "expected"),
    [
        (
            [{"url": "ftp://example.com/x"}],
            "notify[0].url",
            "notify[0].url is 'ftp://example.com/x': must be an http:// or https:// URL",
        ),
        (
            [{"url": "https://a/x"}, {"url": "https://b/x", "kind": "teams"}],
            "notify[1].kind",
            "notify[1].kind is 'teams': input should be 'slack' or 'json'",
        ),
        (
            [{"url": "https://a/x", "on": ["failure", "always"]}],
            "notify[0].on[1]",
            "notify[0].on[1] is 'always': input should be 'failure', 'success' or 'slo_breach'",
        ),
        ([{"url": "https://a/x", "channel": "#ml"}], "notify[0].channel", "is not a known field"),
        ([{"kind": "slack"}], "notify[0].url", "notify[0].url is required"),
        (["https://a/x"], "notify[0]", "notify[0] must be a mapping"),
        ({"url": "https://a/x"}, "notify", "notify must be a list of webhooks"),
    ],
)
def test_check_webhooks_rejects(raw: Any, field: str, expected: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_webhooks(raw, where="notify")
    err = info.value
    assert expected in str(err)
    assert err.field == field
    assert err.fix is not None
    assert err.fix in str(err)


def test_webhook_model_rejects_bad_url_directly() -> None:
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        Webhook(url="not a url")


def test_a_runs_event_says_what_the_run_as_stored_says(tmp_path: Path) -> None:
    from funade.pipelines.notify import run_event
    from funade.pipelines.schemas import StepRecord
    from tests.pipelines.fakes import run_out

    steps = [
        StepRecord(instance="a", node="a", state="succeeded"),
        StepRecord(instance="b[0]", node="b", state="failed"),
    ]
    run = run_out(7, state="failed", steps=steps, duration_seconds=12.0)
    event = run_event(
        "failure", run, pipeline="flow", url="u", max_duration=60.0, message="b[0] failed"
    )
    assert (event.run_id, event.state, event.duration_seconds) == ("7", "failed", 12.0)
    assert event.failed_steps == ["b[0]"]
    assert event.max_duration_seconds == 60.0
    breach = run_event(
        "slo_breach", run, pipeline="flow", url="u", max_duration=60.0, message="", elapsed=61.0
    )
    assert (breach.state, breach.duration_seconds) == ("running", 61.0)


def test_a_runs_page_is_where_a_browser_reaches_the_dashboard(tmp_path: Path) -> None:
    from funade.pipelines.notify import run_page
    from funade.settings import Settings
    from tests.pipelines.fakes import FakeControlPlane, run_out

    plane = FakeControlPlane(tmp_path)
    run = run_out(7, project="team a")
    assert run_page(plane, run) == "https://funade.example/runs/7?project=team%20a"
    plane.url, plane.is_local = "http://funade.local", True  # the in-process API
    plane.settings = Settings(home=tmp_path, host="127.0.0.1", port=9000)
    assert run_page(plane, run) == "http://127.0.0.1:9000/runs/7?project=team%20a"
