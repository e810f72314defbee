"""The local runner: performs the engine's intents with step processes and the control plane.

One :class:`Runner` drives one attempt of one run (``runs.py`` checks, records and starts
runs, and makes runners). It starts a zygote (``zygote.py``) that
imports the pipeline's code once and forks a process per step; it feeds what happens to the
:class:`~funade.pipelines.engine.Engine` and does what the engine decides: start a step,
reuse a cache hit, settle, stop, finish. Everything it learns is reported to the control plane
through a :class:`~funade.pipelines.reporting.RunReporter` (``funade.Client`` with the run's
token: ``POST /api/v1/runs/{id}/events``), batched, and always before a
step that depends on it starts, so a runner killed at any moment leaves records a resume can
trust: a step recorded as succeeded has its outputs stored.

Its parts: ``outbox.py`` (the batched reports), ``cachelookup.py`` (the engine's cache
lookups), ``stepinputs.py`` (a step's environment and inputs), ``stepoutputs.py`` (a step's
outcome, its outputs and log kept by digest), ``notify.py`` (webhooks about the run).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from funade.artifacts import ArtifactCache
from funade.durations import format_seconds
from funade.errors import FunadeError
from funade.pipelines import notify
from funade.pipelines.cachelookup import CacheLookup
from funade.pipelines.engine import (
    CancelRequested,
    Engine,
    Event,
    Failed,
    Finish,
    Intent,
    Reuse,
    Settle,
    Start,
    Stop,
    Stopped,
    Stored,
)
from funade.pipelines.outbox import Outbox
from funade.pipelines.reporting import RunReporter
from funade.pipelines.schemas import RunOut, StepRecord
from funade.pipelines.spec import PipelineSpec
from funade.pipelines.stepinputs import step_environment, task_input
from funade.pipelines.stepoutputs import StepOutputs, remove_attempt
from funade.pipelines.zygote import ZygoteProcess

__all__ = ["Observer", "Runner", "utc_now"]

_REUSED = ("succeeded", "cached")
_POLL_SECONDS = 1.0
"""How often the runner reports and so learns of a cancel request, at the least."""
_AWAY_SECONDS = 120.0
"""How long the end of a run waits for a control plane that does not answer."""
_BATCH_SECONDS = 0.1
"""How long news no new step depends on may wait to be reported with more."""


class Observer(Protocol):
    """What a live display is told (the CLI's rich table; nothing by default)."""

    def started(self, run: RunOut, spec: PipelineSpec) -> None: ...
    def step(self, record: StepRecord) -> None: ...
    def log(self, instance: str, line: str) -> None: ...


class _Quiet:
    def started(self, run: RunOut, spec: PipelineSpec) -> None:
        pass

    def step(self, record: StepRecord) -> None:
        pass

    def log(self, instance: str, line: str) -> None:
        pass


@dataclass
class _Running:
    start: Start
    out_dir: Path
    log_path: Path
    started_at: datetime
    pid: int | None = None
    deadline: float | None = None
    timed_out: bool = False
    stopping: bool = False
    log_offset: int = 0
    partial: bytes = b""


class _LoadFailed(Exception):
    pass


def _safe(instance: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", instance)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Runner:
    """Runs one attempt of ``run`` (already recorded) to its end and returns it as stored."""

    def __init__(
        self,
        client: RunReporter,
        spec: PipelineSpec,
        run: RunOut,
        *,
        target: str,
        params: Mapping[str, Any],
        done: Mapping[str, Mapping[str, Stored]] | None = None,
        observer: Observer | None = None,
        zygote: ZygoteProcess | None = None,
        token: str = "",
    ) -> None:
        self.client = client
        self.token = token
        """The run's own token, which the steps get too (``client`` reports with it)."""
        self.spec = spec
        self.run = run
        self.target = target
        self.params = dict(params)
        self.project = run.project
        self.observer = observer or _Quiet()
        self.attempt = run.attempt
        home = client.settings.home
        self.work = home / "runs" / str(run.id) / f"attempt-{self.attempt}"
        self.cache = ArtifactCache(
            client.settings.resolved_cache_dir,
            lambda digest: client.open_artifact(digest, project=self.project),
        )
        self.outputs = StepOutputs(client, self.cache, project=self.project)
        lookup = CacheLookup(client, spec.name, project=self.project)
        self.engine = Engine(
            spec,
            self.params,
            lookup=lookup if run.use_cache and not run.refresh_cache else None,
            done=done,
        )
        self.cache_writes = run.use_cache
        """Whether succeeded steps write the cache (not with --no-cache; with --refresh)."""
        self.told_uncacheable: set[str] = set()
        self.drifted: set[str] = set()
        """Steps whose code the step processes imported is not the code their key hashed (a
        file saved while the run started): their outputs are not written to the cache."""
        self.positions = {n.id: i for i, n in enumerate(spec.nodes)}
        self.outbox = Outbox(client, run.id)
        self.running: dict[str, _Running] = {}
        self.delayed: list[tuple[float, Start]] = []
        self.hooks = notify.check_webhooks(spec.notify, where=f"pipeline {spec.name!r}, notify")
        self.cancel_seen = False
        self.slo_reported = run.slo_breached
        self.zygote = zygote
        """Started by the caller while it records the run, or here."""
        self.zygote_ready = False
        self.earlier = {s.instance: s.attempt for s in run.steps if s.state not in _REUSED}
        """Attempts each step made in earlier run attempts: a resume's attempts count on."""

    # The loop -----------------------------------------------------------------------------

    def execute(self) -> RunOut:
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "logs").mkdir(exist_ok=True)
        began = time.monotonic()
        self.outbox.run = {"state": "running", "attempt": self.attempt}
        self.observer.started(self.run, self.spec)
        if self.zygote is None:
            self.zygote = ZygoteProcess(self.target)
        try:
            self._perform(self.engine.start())
            while self.engine.finished is None or self.running:
                intents: list[Intent] = []
                for message in self.zygote.read(self._wait_seconds()):
                    intents += self._message(message)
                self._perform(intents)  # all that ended at once, decided and reported together
                self._tick(began)
                if time.monotonic() - self.outbox.last_report >= _POLL_SECONDS:
                    self._report()
        except _LoadFailed as exc:
            (self.work / "zygote.log").write_text(self.zygote.output())
            return self._abandon(f"the pipeline's code could not be loaded: {exc}")
        except KeyboardInterrupt:
            self._perform(self.engine.on(CancelRequested("interrupted (Ctrl-C)")))
            self._drain()
        except EOFError:
            return self._abandon("the step process factory exited unexpectedly")
        finally:
            self.zygote.close()
        assert self.engine.finished is not None
        return self._finish(self.engine.finished)

    def _drain(self) -> None:
        """After a cancel: wait for the stopped step processes to be gone."""
        assert self.zygote is not None
        deadline = time.monotonic() + 10
        while self.running and time.monotonic() < deadline:
            for message in self.zygote.read(0.2):
                self._perform(self._message(message))

    def _wait_seconds(self) -> float:
        now = time.monotonic()
        wake = [now + _POLL_SECONDS]
        wake += [at for at, _ in self.delayed]
        wake += [r.deadline for r in self.running.values() if r.deadline is not None]
        if self.running:
            wake.append(now + 0.2)  # stream the logs
        return max(0.0, min(wake) - now)

    def _tick(self, began: float) -> None:
        now = time.monotonic()
        due = [s for at, s in self.delayed if at <= now]
        self.delayed = [(at, s) for at, s in self.delayed if at > now]
        for start in due:
            self._launch(start)
        for inst, running in list(self.running.items()):
            if running.deadline is not None and now >= running.deadline and not running.timed_out:
                running.timed_out = True
                self._kill(inst)
            self._stream(inst, running)
        limit = self.spec.max_duration
        if limit is not None and not self.slo_reported and now - began > limit:
            self.slo_reported = True
            self.outbox.run["slo_breached"] = True
            elapsed = now - began
            shown = format_seconds(round(elapsed, 1) if elapsed < 60 else round(elapsed))
            self._notify(
                "slo_breach",
                f"running for {shown}, over its {format_seconds(limit)} limit",
                elapsed=elapsed,
            )

    # Intents ------------------------------------------------------------------------------

    def _perform(self, intents: list[Intent]) -> None:
        starts = []
        for intent in intents:
            if isinstance(intent, Start):
                starts.append(intent)
            elif isinstance(intent, Reuse):
                self._record(
                    intent.instance,
                    intent.node,
                    intent.index,
                    "cached",
                    cache_key=intent.cache_key,
                    cached=True,
                    outputs=intent.outputs,
                    started_at=utc_now(),
                    finished_at=utc_now(),
                )
            elif isinstance(intent, Settle):
                self._record(
                    intent.instance, intent.node, intent.index, intent.state, error=intent.reason
                )
            elif isinstance(intent, Stop):
                if intent.instance in self.running:
                    self.running[intent.instance].stopping = True
                    self._kill(intent.instance)
                else:  # waiting for a retry: nothing runs
                    self.delayed = [
                        (a, s) for a, s in self.delayed if s.instance != intent.instance
                    ]
                    self._perform(self.engine.on(Stopped(intent.instance)))
            elif isinstance(intent, Finish):
                pass
        if starts:
            # What a new step depends on is reported before it starts, so a step a resume finds
            # recorded as succeeded has never been re-run; other news waits at most 0.1 s.
            depends = any(
                up in self.outbox.unreported
                for start in starts
                for up in self.engine.upstream[start.node]
            )
            if depends or time.monotonic() - self.outbox.last_report > _BATCH_SECONDS:
                self._report()
            now = time.monotonic()
            for start in starts:
                if start.delay > 0:
                    self.delayed.append((now + start.delay, start))
                else:
                    self._launch(start)

    def _launch(self, start: Start) -> None:
        assert self.zygote is not None
        if not self.zygote_ready:  # a fully cached run never waits for the code to import
            error = self.zygote.wait_ready()
            if error is not None:
                raise _LoadFailed(error)
            self.zygote_ready = True
            imported = self.zygote.digests or {}
            self.drifted = {n.id for n in self.spec.nodes if imported.get(n.id) != n.code_digest}
        node = self.spec.node(start.node)
        safe = _safe(start.instance)
        out_dir = self.work / "steps" / safe / str(start.attempt)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        log_path = self.work / "logs" / f"{safe}.log"
        where = f"pipeline {self.spec.name!r}, step {start.instance!r}"
        try:
            env = self._environment(node.options.env, node.options.secrets, start, where)
            inputs = {name: task_input(value, self.cache) for name, value in start.inputs.items()}
        except FunadeError as exc:  # nothing ran: the step fails as it would have
            running = _Running(start, out_dir, log_path, utc_now())
            intents = self.engine.on(Failed(start.instance, str(exc), retryable=False))
            self._settled(start.instance, running)
            self._perform(intents)
            return
        if start.attempt > 1:
            with log_path.open("a") as log:
                log.write(f"--- attempt {self._nth(start.instance, start.attempt)} ---\n")
        running = _Running(start, out_dir, log_path, utc_now())
        if log_path.exists():
            running.log_offset = log_path.stat().st_size
        if node.options.timeout is not None:
            running.deadline = time.monotonic() + node.options.timeout
        self.running[start.instance] = running
        why = node.uncacheable or (
            "its code changed after the run compiled it" if node.id in self.drifted else ""
        )
        if why and node.id not in self.told_uncacheable:  # said once per run
            self.told_uncacheable.add(node.id)
            with log_path.open("a") as log:
                log.write(f"funade: step {node.id!r} is not cached: {why}.\n")
        task = {
            "function": node.function,
            "inputs": inputs,
            "out_dir": str(out_dir),
            "log": str(log_path),
            "env": env,
            "where": where,
        }
        self.zygote.send({"op": "run", "id": start.instance, "task": task})
        self._record(
            start.instance,
            start.node,
            start.index,
            "running",
            attempt=self._nth(start.instance, start.attempt),
            cache_key=start.cache_key,
            started_at=running.started_at,
        )

    def _environment(
        self, env: Mapping[str, str], secrets: Mapping[str, str], start: Start, where: str
    ) -> dict[str, str]:
        run_env = {
            # Lineage: a model logged in the step links to the run, step and input digests.
            "FUNADE_RUN_ID": str(self.run.id),
            "FUNADE_RUN_ATTEMPT": str(self.attempt),
            "FUNADE_PIPELINE": self.spec.name,
            "FUNADE_PROJECT": self.project,
            # The project's code as this attempt recorded it (not the step process's own).
            "FUNADE_RUN_SOURCE": self.target,
            "FUNADE_RUN_GIT": json.dumps(self.run.lineage.get("git")),
            # The step's credential: the run's token, for the control plane the runner uses.
            "FUNADE_URL": self.client.address,
            "FUNADE_API_KEY": self.token,
            "FUNADE_HOME": str(self.client.settings.home),
        }
        return step_environment(run_env, start, env, secrets, where)

    def _kill(self, instance: str) -> None:
        assert self.zygote is not None
        self.zygote.send({"op": "kill", "id": instance})

    # Events -------------------------------------------------------------------------------

    def _message(self, message: dict[str, Any]) -> list[Intent]:
        running = self.running.get(message.get("id", ""))
        if running is None:
            return []
        if message["op"] == "started":
            running.pid = int(message["pid"])
            return []
        self._stream(message["id"], running, final=True)
        intents = self.engine.on(self._outcome(running, int(message["code"])))
        self._settled(message["id"], running)  # recorded before what depends on it starts
        return intents

    def _outcome(self, running: _Running, code: int) -> Event:
        start = running.start
        return self.outputs.outcome(
            start.instance,
            running.out_dir,
            code,
            stopping=running.stopping,
            timed_out=running.timed_out,
            timeout=self.spec.node(start.node).options.timeout or 0,
        )

    def _settled(self, instance: str, running: _Running) -> None:
        """After an attempt ended: drop it from the running set, record the final state."""
        self.running.pop(instance, None)
        state = self.engine.instances[instance]
        if state.state == "running":  # a retry was scheduled
            self._record(
                instance,
                state.node,
                state.index,
                "running",
                attempt=self._nth(instance, state.attempt),
                cache_key=state.cache_key,
                error=f"attempt {self._nth(instance, state.attempt - 1)} failed: {state.error}; "
                "retrying",
                started_at=running.started_at,
            )
            return
        log_digest = self.outputs.upload_log(running.log_path)
        self._record(
            instance,
            state.node,
            state.index,
            state.state,
            attempt=self._nth(instance, state.attempt),
            cache_key=state.cache_key,
            cache_write=state.state == "succeeded"
            and running.start.cacheable
            and self.cache_writes
            and state.node not in self.drifted,
            outputs=state.outputs,
            error=state.error,
            log_digest=log_digest,
            started_at=running.started_at,
            finished_at=utc_now(),
        )
        remove_attempt(running.out_dir)

    def _nth(self, instance: str, attempt: int) -> int:
        """The step's ``attempt``-th try in this run attempt, counted over the whole run."""
        return self.earlier.get(instance, 0) + attempt

    def _stream(self, instance: str, running: _Running, *, final: bool = False) -> None:
        try:
            with running.log_path.open("rb") as log:
                log.seek(running.log_offset)
                data = log.read(1 << 20)
        except FileNotFoundError:
            return
        running.log_offset += len(data)
        data = running.partial + data
        lines = data.split(b"\n")
        running.partial = b"" if final else lines.pop()
        for line in lines:
            if line or not final:
                self.observer.log(instance, line.decode(errors="replace"))
        if lines and not final:  # a finished step's whole log is uploaded instead
            self.outbox.add_log(
                instance, b"".join(line + b"\n" for line in lines).decode(errors="replace")
            )

    # Reporting ----------------------------------------------------------------------------

    def _record(
        self,
        instance: str,
        node: str,
        index: int | None,
        state: str,
        *,
        outputs: Mapping[str, Stored] | None = None,
        **fields: Any,
    ) -> None:
        record = StepRecord(
            instance=instance,
            node=node,
            index=index,
            position=self.positions[node] * 100_000 + (index or 0),
            state=state,
            outputs={k: v.model_dump() for k, v in (outputs or {}).items()},
            run_attempt=self.attempt,
            **fields,
        )
        self.observer.step(self.outbox.put(record))

    def _report(self) -> None:
        answer = self.outbox.send()
        if answer is not None and answer.cancel_requested and not self.cancel_seen:
            self.cancel_seen = True
            self._perform(self.engine.on(CancelRequested()))

    def _finish(self, finish: Finish) -> RunOut:
        self.outbox.run.update(state=finish.state, reason=finish.reason, finished_at=utc_now())
        self._report()
        deadline = time.monotonic() + _AWAY_SECONDS
        while self.outbox and time.monotonic() < deadline:  # the control plane was away
            time.sleep(1)
            self._report()
        if self.outbox:
            raise FunadeError(
                f"Run {self.run.id} ended ({finish.state}), but the control plane at "
                f"{self.client.url} could not be told for {_AWAY_SECONDS:.0f} s.",
                fix=f"When it is back, `funade runs resume {self.run.id}` reuses every output "
                "that was recorded.",
            )
        run = self.outbox.ended or self.client.get_run(self.run.id)
        if finish.state == "failed":
            self._notify("failure", finish.reason, run)
        elif finish.state == "succeeded":
            self._notify("success", "", run)
        return run

    def _abandon(self, reason: str) -> RunOut:
        self.engine.finished = Finish("failed", reason)
        return self._finish(self.engine.finished)

    def _notify(
        self,
        event: notify.EventKind,
        message: str,
        run: RunOut | None = None,
        *,
        elapsed: float | None = None,
    ) -> None:
        if not self.hooks:
            return
        about = notify.run_event(
            event,
            run or self.run,
            pipeline=self.spec.name,
            url=notify.run_page(self.client, self.run),
            max_duration=self.spec.max_duration,
            message=message,
            elapsed=elapsed,
        )
        notify.send(self.hooks, about)
