"""Adaptive batching: concurrent requests merged into one model call, results split back.

The batcher never waits when the model is idle: a lone request runs at once, handed straight to
the model thread without the batch's bookkeeping, so a client at concurrency 1 pays nothing.
While a call is running, new requests queue; when it ends, everything queued (up to
``max_batch_size`` rows) goes in the next call. ``max_latency_ms`` > 0 additionally holds a
batch open that long for more rows when it is not yet full (a throughput knob for bursty load;
0 by default).

If a merged call fails, each request of the batch is retried alone, so one poisonous request
fails by itself instead of failing its neighbours.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from funade.serving.config import DEFAULT_MAX_BATCH_SIZE
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
    call_seconds: float = 0.0
    """How long the model call took."""


class Batcher:
    """Merges concurrent ``submit`` calls into calls of ``run`` in ``thread``.

    Driven by callbacks on the event loop, not a task of its own: a request that finds the
    model idle starts its call at once, and each call's completion starts the next from what
    queued meanwhile, so no wake-up of a batching task sits between a request and the model."""

    def __init__(
        self,
        run: RunModel,
        thread: ModelThread,
        *,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_latency_ms: float = 0.0,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self._run = run
        self._thread = thread
        self.max_batch_size = max(1, max_batch_size)
        self.max_latency = max(0.0, max_latency_ms) / 1000
        self._on_batch = on_batch
        self._pending: deque[_Item] = deque()
        self._alone: deque[_Item] = deque()  # to run one by one: a merged call failed
        self._running = False
        self._timer: asyncio.TimerHandle | None = None
        self.busy_since: float | None = None

    def start(self) -> None:
        """Nothing to start (kept for symmetry with ``stop``)."""

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def submit(self, inputs: Tensors, wanted: Wanted = None) -> Tensors:
        """Run the model on ``inputs`` (first dimension: rows), possibly with other requests;
        the answer has at least the ``wanted`` outputs (None: all of them)."""
        return await self.enqueue(inputs, wanted)

    def enqueue(self, inputs: Tensors, wanted: Wanted = None) -> asyncio.Future[Tensors]:
        """``submit`` without the coroutine: the future of the answer. A future that is done
        (given up on) before its batch starts is dropped from it."""
        rows = int(next(iter(inputs.values())).shape[0]) if inputs else 1
        future: asyncio.Future[Tensors] = asyncio.get_running_loop().create_future()
        if not self._running and not self._pending and not self._alone and not self.max_latency:
            self._lone(inputs, rows, wanted, future)
            return future
        self._pending.append(_Item(inputs, rows, wanted, future))
        if not self._running:
            self._dispatch()
        return future

    # Starting calls ----------------------------------------------------------------------------

    def _lone(
        self, inputs: Tensors, rows: int, wanted: Wanted, future: asyncio.Future[Tensors]
    ) -> None:
        """A request that finds nothing queued and the model idle, straight to the model
        thread: no queue entry, no batch to take, merge or split, no second future; what
        comes in meanwhile queues behind it as behind any call."""
        self._running = True
        started = time.perf_counter()
        self.busy_since = started

        def done(outputs: Tensors | None, error: BaseException | None) -> None:
            try:
                if not future.done():  # (given up on: timed out, or its client went away)
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(cast(Tensors, outputs))
                if self._on_batch is not None:
                    elapsed = time.perf_counter() - started
                    self._on_batch(BatchStats(1, rows, [0.0], elapsed))
            finally:  # whatever happened above, the next call starts
                self._finish()

        self._thread.send(self._run, (inputs, wanted), done)

    def _dispatch(self) -> None:
        """Start the next model call, if anything waits and nothing runs."""
        if self._alone:
            item = self._alone.popleft()
            if item.future.done():
                self._dispatch()
            else:
                self._call([item])
            return
        while self._pending and self._pending[0].future.done():
            self._pending.popleft()
        if not self._pending:
            return
        if self.max_latency > 0 and not self._full():
            deadline = self._pending[0].queued_at + self.max_latency
            if deadline > time.perf_counter():
                if self._timer is None:
                    loop = asyncio.get_running_loop()
                    wait = deadline - time.perf_counter()
                    self._timer = loop.call_later(wait, self._on_timer)
                return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._call(self._take())

    def _on_timer(self) -> None:
        self._timer = None
        if not self._running:
            self._force_dispatch()

    def _force_dispatch(self) -> None:
        while self._pending and self._pending[0].future.done():
            self._pending.popleft()
        if self._pending:
            self._call(self._take())

    def _full(self) -> bool:
        rows = 0
        for item in self._pending:
            if not item.future.done():
                rows += item.rows
                if rows >= self.max_batch_size:
                    return True
        return False

    def _take(self) -> list[_Item]:
        """The queued requests of the next call: in order, up to ``max_batch_size`` rows (a
        request that does not fit waits for the next one; the first always goes)."""
        batch = [self._pending.popleft()]
        rows = batch[0].rows
        while self._pending and rows < self.max_batch_size:
            item = self._pending[0]
            if item.future.done():
                self._pending.popleft()
                continue
            if rows + item.rows > self.max_batch_size:
                break
            batch.append(self._pending.popleft())
            rows += item.rows
        return batch

    def _call(self, batch: list[_Item]) -> None:
        self._running = True
        started = time.perf_counter()
        self.busy_since = started
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            try:
                inputs = {
                    name: np.concatenate([item.inputs[name] for item in batch])
                    for name in batch[0].inputs
                }
            except ValueError:  # cannot be merged: each alone
                self._retry_alone(batch)
                self._finish()
                return
        wanted = _union(item.wanted for item in batch)
        future = self._thread.call(self._run, inputs, wanted)
        future.add_done_callback(lambda done: self._completed(batch, done, started))

    # Finishing calls ---------------------------------------------------------------------------

    def _completed(self, batch: list[_Item], done: asyncio.Future[Tensors], started: float) -> None:
        try:
            if done.cancelled():  # the loop is shutting down
                for item in batch:
                    item.future.cancel()
                return
            error = done.exception()
            if error is not None:
                if len(batch) == 1:
                    _fail(batch[0], error)
                else:
                    self._retry_alone(batch)  # find the culprit: each request alone
            else:
                self._split(batch, done.result())
            if self._on_batch is not None:
                self._on_batch(
                    BatchStats(
                        requests=len(batch),
                        rows=sum(item.rows for item in batch),
                        queue_seconds=[started - item.queued_at for item in batch],
                        call_seconds=time.perf_counter() - started,
                    )
                )
        finally:  # whatever happened above, the next call starts
            self._finish()

    def _split(self, batch: list[_Item], outputs: Tensors) -> None:
        if len(batch) == 1:
            _resolve(batch[0], outputs)
            return
        total = sum(item.rows for item in batch)
        if any(value.ndim == 0 or value.shape[0] != total for value in outputs.values()):
            # The outputs are not one row per input row: this model cannot be batched.
            self.max_batch_size = 1
            self._retry_alone(batch)
            return
        start = 0
        for item in batch:
            end = start + item.rows
            _resolve(item, {name: value[start:end] for name, value in outputs.items()})
            start = end

    def _retry_alone(self, batch: list[_Item]) -> None:
        self._alone.extendleft(reversed(batch))

    def _finish(self) -> None:
        self._running = False
        self.busy_since = None
        self._dispatch()


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


def _fail(item: _Item, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
