"""Notifications about pipeline runs, posted to webhooks (Slack incoming webhooks or plain JSON).

A runner makes the event with ``run_event`` (what it says of a run, with a link to the run's
page from ``run_page``) and posts it with ``send``.

``send`` never raises for delivery problems: it retries connection errors, timeouts, 5xx and 429
with exponential backoff, and returns one ``Delivery`` per hook it tried. Webhook URLs carry
secrets, so logs and ``Delivery.url`` show only ``scheme://host/first-segment/...``.

The ``"json"`` body is one flat object::

    {"source": "funade", "event": "failure" | "success" | "slo_breach", "pipeline": str,
     "run_id": str, "state": str, "url": str, "started_at": ISO 8601 | null,
     "finished_at": ISO 8601 | null, "duration_seconds": float | null,
     "max_duration_seconds": float | null, "failed_steps": [str], "message": str}
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from funade.errors import InvalidInputError
from funade.pipelines.reporting import RunReporter
from funade.pipelines.schemas import RunOut
from funade.urls import http_url

__all__ = [
    "Delivery",
    "RunEvent",
    "Webhook",
    "check_webhooks",
    "payload",
    "redact_url",
    "run_event",
    "run_page",
    "send",
]

log = logging.getLogger("funade.pipelines.notify")

EventKind = Literal["failure", "success", "slo_breach"]
_HEADLINE = {"failure": "failed", "success": "succeeded", "slo_breach": "breached its time limit"}


class Webhook(BaseModel):
    """Where to post, in which format, and for which events."""

    model_config = ConfigDict(extra="forbid")

    url: str
    kind: Literal["slack", "json"] = "json"
    on: list[EventKind] = ["failure", "slo_breach"]

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value


@dataclass(frozen=True)
class RunEvent:
    """Something that happened to a pipeline run, worth telling people about."""

    event: EventKind
    pipeline: str
    run_id: str
    state: str
    url: str  # a link to the run (dashboard or API)
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    max_duration_seconds: float | None
    failed_steps: list[str]
    message: str  # e.g. the first failed step's error, or "took 12m 3s, over its 10m limit"


def run_event(
    event: EventKind,
    run: RunOut,
    *,
    pipeline: str,
    url: str,
    max_duration: float | None,
    message: str,
    elapsed: float | None = None,
) -> RunEvent:
    """What to post about ``run`` as stored (a time-limit breach: while it runs, ``elapsed``
    seconds in)."""
    return RunEvent(
        event=event,
        pipeline=pipeline,
        run_id=str(run.id),
        state=run.state if event != "slo_breach" else "running",
        url=url,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_seconds=elapsed if elapsed is not None else run.duration_seconds,
        max_duration_seconds=max_duration,
        failed_steps=[s.instance for s in run.steps if s.state == "failed"],
        message=message,
    )


def run_page(reporter: RunReporter, run: RunOut) -> str:
    """The run's page on the dashboard, as a person's browser reaches it: at the control
    plane's URL, or, for a run recorded in a local home, where `funade up` serves it."""
    base = reporter.url
    if reporter.is_local or base.startswith("http://funade.local"):
        settings = reporter.settings
        base = settings.url if settings.url and "://" in settings.url else ""
        base = base or http_url(settings.host, settings.port)
    return f"{base.rstrip('/')}/runs/{run.id}?project={quote(run.project, safe='')}"


@dataclass(frozen=True)
class Delivery:
    """The outcome of posting one event to one hook (``url`` is redacted)."""

    url: str
    ok: bool
    status: int | None
    error: str | None
    attempts: int


def check_webhooks(raw: Any, *, where: str) -> list[Webhook]:
    """Validate a list of webhook dicts; ``where`` is the path of the list, e.g. ``"notify"``."""
    fix = 'Give a list like [{"url": "https://hooks.slack.com/services/...", "kind": "slack"}].'
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInputError(
            f"{where} must be a list of webhooks.", field=where, value=raw, fix=fix
        )
    hooks: list[Webhook] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            field = f"{where}[{i}]"
            raise InvalidInputError(f"{field} must be a mapping.", field=field, value=item, fix=fix)
        try:
            hooks.append(Webhook.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = f"{where}[{i}]" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]
            )
            problem, fix = _explain(err)
            raise InvalidInputError(
                f"{field} {problem}.", field=field, value=err.get("input"), fix=fix
            ) from None
    return hooks


_FIXES = {
    "url": 'Use an http(s) URL, e.g. "https://hooks.slack.com/services/T000/B000/XXXX".',
    "kind": 'Use "slack" for a Slack incoming webhook or "json" for a plain JSON POST.',
    "on": 'List events out of "failure", "success" and "slo_breach".',
}


def _explain(err: Any) -> tuple[str, str]:
    """A pydantic error as (problem, fix)."""
    name = next((p for p in err["loc"] if isinstance(p, str)), "")
    fix = _FIXES.get(name, 'A webhook has only the fields "url", "kind" and "on".')
    if err["type"] == "extra_forbidden":
        return "is not a known field", fix
    if err["type"] == "missing":
        return "is required", fix
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"is {err.get('input')!r}: {message[0].lower()}{message[1:]}", fix


def redact_url(url: str) -> str:
    """``scheme://host[:port]/first-segment/...``: safe to log, since hook URLs hold secrets."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # never the user:password part
    first = parts.path.lstrip("/").split("/", 1)[0]
    rest = "/..." if parts.path.lstrip("/") != first or parts.query else ""
    return f"{parts.scheme}://{host}/{first}{rest}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _duration(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(hook: Webhook, event: RunEvent) -> dict[str, Any]:
    """The JSON body posted to ``hook`` for ``event``."""
    if hook.kind == "json":
        body = {"source": "funade", **asdict(event)}
        body["started_at"], body["finished_at"] = _iso(event.started_at), _iso(event.finished_at)
        return body
    name, run = _slack_escape(event.pipeline), _slack_escape(event.run_id)
    link = f"<{event.url}|run {run}>"
    headline = f"Pipeline {name} {_HEADLINE[event.event]}"
    lines = [f"*{headline}*", f"{link} - state: {_slack_escape(event.state)}"]
    if event.duration_seconds is not None:
        limit = event.max_duration_seconds
        took = _duration(event.duration_seconds)
        lines.append(f"took {took}" + (f" (limit {_duration(limit)})" if limit else ""))
    if event.failed_steps:
        lines.append("failed steps: " + ", ".join(_slack_escape(s) for s in event.failed_steps))
    if event.message:
        lines.append("> " + _slack_escape(event.message[:1500]).replace("\n", "\n> "))
    text = "\n".join(lines)[:2900]  # Block Kit section text is limited to 3000 characters
    return {
        "text": f"funade: {headline} ({link})",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


@functools.cache
def _user_agent() -> str:
    try:
        version = importlib.metadata.version("funade")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"funade/{version}"


def _post(
    client: httpx.Client, hook: Webhook, body: Any, retry: tuple[float, int, float]
) -> Delivery:
    timeout, retries, backoff = retry
    headers = {"Content-Type": "application/json", "User-Agent": _user_agent()}
    safe = redact_url(hook.url)
    status: int | None = None
    error = "not attempted"
    attempt = 0
    while attempt <= retries:
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        attempt += 1
        try:
            response = client.post(hook.url, json=body, headers=headers, timeout=timeout)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}".replace(hook.url, safe)
            continue
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}".replace(hook.url, safe)
            break
        status = response.status_code
        if 200 <= status < 300:
            return Delivery(url=safe, ok=True, status=status, error=None, attempts=attempt)
        error = f"HTTP {status}: {response.text[:200]}".replace(hook.url, safe)
        if status < 500 and status != 429:
            break
    log.warning("webhook %s failed after %d attempt(s): %s", safe, attempt, error)
    return Delivery(url=safe, ok=False, status=status, error=error, attempts=attempt)


def send(
    hooks: Sequence[Webhook],
    event: RunEvent,
    *,
    timeout: float = 5.0,
    retries: int = 2,
    backoff: float = 0.5,
    client: httpx.Client | None = None,
) -> list[Delivery]:
    """Post ``event`` to each hook whose ``on`` includes it; one ``Delivery`` per hook tried."""
    chosen = [hook for hook in hooks if event.event in hook.on]
    if not chosen:
        return []
    retry = (timeout, max(0, retries), backoff)
    with httpx.Client(timeout=timeout) if client is None else nullcontext(client) as http:
        return [_post(http, hook, payload(hook, event), retry) for hook in chosen]
