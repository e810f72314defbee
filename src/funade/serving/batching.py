"""Adaptive batching: concurrent requests merged into one model call, results split back.

The batcher never waits when the model is idle: a lone request runs at once, so a client at
concurrency 1 pays nothing. While a call is running, new requests queue; when it ends, everything
queued (up to ``max_batch_size`` rows) goes in the next call. ``max_latency_ms`` > 0 additionally
holds a batch open that long for more rows when it is not yet full (a throughput knob for
bursty load; 0 by default).

If a merged call fails, each request of the batch is retried alone, so one poisonous request
fails by itself instead of failing its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from funade.serving.modelthread import ModelThread

Tensors = dict[str, npt.NDArray[Any]]
Wanted = frozenset[str] | None
"""The outputs a request asks for; None: every output."""
RunModel = Callable[[Tensors, Wanted], Tensors]


@dataclass(slots=True)
class _Item:
    inputs: Tensors
    rows: int
    wanted: Wanted
    future: asyncio.Future[Tensors]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class BatchStats:
    """What one model call did, for metrics."""

    requests: int
    rows: int
    queue_seconds: list[float]


class Batcher:
    """Merges concurrent ``submit`` calls into calls of ``run`` in ``thread``."""

    def __init__(
        self,
        run: RunModel,
        thread: ModelThread,
        *,
        max_batch_size: int = 64,
        max_latency_ms: float = 0.0,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self._run = run
        self._thread = thread
        self.max_batch_size = max(1, max_batch_size)
        self.max_latency = max(0.0, max_latency_ms) / 1000
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._carry: _Item | None = None
        self._task: asyncio.Task[None] | None = None
        self.busy_since: float | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, inputs: Tensors, wanted: Wanted = None) -> Tensors:
        """Run the model on ``inputs`` (first dimension: rows), possibly with other requests;
        the answer has at least the ``wanted`` outputs (None: all of them)."""
        return await self.enqueue(inputs, wanted)

    def enqueue(self, inputs: Tensors, wanted: Wanted = None) -> asyncio.Future[Tensors]:
        """``submit`` without the coroutine: the future of the answer. A future that is done
        (given up on) before its batch starts is dropped from it."""
        rows = int(next(iter(inputs.values())).shape[0]) if inputs else 1
        future: asyncio.Future[Tensors] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(inputs, rows, wanted, future))
        return future

    async def _next_batch(self) -> list[_Item]:
        first = self._carry if self._carry is not None else await self._queue.get()
        self._carry = None
        batch, rows = [first], first.rows
        deadline = time.perf_counter() + self.max_latency
        while rows < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if item.future.done():  # its client gave up (timeout) while it queued
                continue
            if rows + item.rows > self.max_batch_size:
                self._carry = item
                break
            batch.append(item)
            rows += item.rows
        return [item for item in batch if not item.future.done()]

    async def _loop(self) -> None:
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            started = time.perf_counter()
            self.busy_since = started
            try:
                await self._execute(batch)
            finally:
                self.busy_since = None
            if self._on_batch is not None:
                self._on_batch(
                    BatchStats(
                        requests=len(batch),
                        rows=sum(item.rows for item in batch),
                        queue_seconds=[started - item.queued_at for item in batch],
                    )
                )

    async def _execute(self, batch: list[_Item]) -> None:
        if len(batch) == 1:
            item = batch[0]
            try:
                outputs = await self._thread.call(self._run, item.inputs, item.wanted)
                _resolve(item, outputs)
            except Exception as exc:
                _fail(item, exc)
            return
        try:
            merged = {
                name: np.concatenate([item.inputs[name] for item in batch])
                for name in batch[0].inputs
            }
            outputs = await self._thread.call(
                self._run, merged, _union(item.wanted for item in batch)
            )
        except Exception:
            for item in batch:  # find the culprit: each request alone
                await self._execute([item])
            return
        total = sum(item.rows for item in batch)
        if any(value.ndim == 0 or value.shape[0] != total for value in outputs.values()):
            # The outputs are not one row per input row: this model cannot be batched.
            self.max_batch_size = 1
            for item in batch:
                await self._execute([item])
            return
        start = 0
        for item in batch:
            end = start + item.rows
            _resolve(item, {name: value[start:end] for name, value in outputs.items()})
            start = end


def _union(wanted: Iterable[Wanted]) -> Wanted:
    names: set[str] = set()
    for each in wanted:
        if each is None:
            return None
        names |= each
    return frozenset(names)


def _resolve(item: _Item, outputs: Tensors) -> None:
    if not item.future.done():
        item.future.set_result(outputs)


def _fail(item: _Item, exc: Exception) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
