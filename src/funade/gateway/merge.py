"""Merging concurrent inference requests for one revision into one upstream call.

Requests of one form (``forms.py``) are grouped by the gateway's key: the deployment, the revision
drawn for them and the form's own key. A request that finds its group idle goes out on the event
loop's next turn (alone, as it came, unless others arrived in the same turn), so a lone request
waits for nothing; requests arriving while the group's call is out wait for it and then go
together (full batches at once, the last one awaited), their inputs stacked along the first axis,
and the answer is cut back into one per request, each with its own ``id`` and, for binary
answers, its own header length. If the merged call is refused (say one request has a value out of
range), or its answer cannot be cut back row by row, every request is sent again on its own, so
each gets the answer and the error it would have had alone.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from funade.gateway.forms import MAX_ROWS, Answer, Request, Send, split_any, stack_any


@dataclass
class _Waiting:
    request: Request
    send: Send
    """How this request goes alone (with its own headers)."""
    done: asyncio.Future[Answer]


@dataclass
class _Group:
    max_rows: int
    """Rows in one merged call: the revision's ``max_batch_size``, so the replica makes one
    model call of it."""
    waiting: list[_Waiting] = field(default_factory=list)
    busy: bool = False


class Merger:
    """Groups of requests, each sent by ``send`` (which forwards a body to a replica)."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        """Rows in one merged call when ``submit`` names no limit of its own."""
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self.submitted = 0
        """Requests passed to a merge group (merged or not)."""
        self.merged_calls = 0
        self.merged_requests = 0
        self.merged_by_form: collections.Counter[str] = collections.Counter()
        """Merged upstream calls by request form."""

    async def submit(
        self, key: tuple[Any, ...], request: Request, send: Send, max_rows: int | None = None
    ) -> Answer:
        """``request``'s answer, sent with others of ``key`` in calls of at most ``max_rows``
        rows (a request of that many rows or more goes alone, at once)."""
        self.submitted += 1
        limit = self.max_rows if max_rows is None else max(1, max_rows)
        if request.rows >= limit:
            return await send(request.body, [])
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(limit)
        waiting = _Waiting(request, send, asyncio.get_running_loop().create_future())
        group.waiting.append(waiting)
        if not group.busy:
            group.busy = True
            asyncio.get_running_loop().create_task(self._drain(key, group))
        return await waiting.done

    async def _drain(self, key: tuple[Any, ...], group: _Group) -> None:
        """Send what waits, in batches of at most ``max_rows``: every full batch at once (it
        gains nothing by waiting), the last, partial one awaited, so that what arrives
        meanwhile can join the next."""
        loop = asyncio.get_running_loop()
        try:
            while group.waiting:
                batch: list[_Waiting] = []
                rows = 0
                while group.waiting and (
                    not batch or rows + group.waiting[0].request.rows <= group.max_rows
                ):
                    batch.append(group.waiting.pop(0))
                    rows += batch[-1].request.rows
                if group.waiting:  # full: the rest did not fit
                    task = loop.create_task(self._send(batch))
                    self._sending.add(task)  # held until done (the loop keeps weak references)
                    task.add_done_callback(self._sending.discard)
                    continue
                await self._send(batch)
        finally:
            group.busy = False
            if not group.waiting and self._groups.get(key) is group:
                del self._groups[key]

    async def _send(self, batch: list[_Waiting]) -> None:
        if len(batch) == 1:
            await _settle(batch[0].done, batch[0].send(batch[0].request.body, []))
            return
        requests = [w.request for w in batch]
        try:  # with the first request's headers, the merged body's own replacing its
            status, headers, payload, revision = await batch[0].send(*stack_any(requests))
        except Exception as exc:
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
            return
        answers = split_any(payload, headers, requests) if status == 200 else None
        if answers is None:  # one request spoiled the batch (or the answer is odd): one by one
            await asyncio.gather(*(_settle(w.done, w.send(w.request.body, [])) for w in batch))
            return
        self.merged_calls += 1
        self.merged_requests += len(batch)
        self.merged_by_form[requests[0].form] += 1
        for waiting, (answer, replaced) in zip(batch, answers, strict=True):
            names = {name for name, _ in replaced} | {b"content-length"}
            kept = [(k, v) for k, v in headers if k not in names] + replaced
            if not waiting.done.done():
                waiting.done.set_result((status, kept, answer, revision))


async def _settle(done: asyncio.Future[Answer], answer: Awaitable[Answer]) -> None:
    try:
        result = await answer
    except Exception as exc:
        if not done.done():
            done.set_exception(exc)
        return
    if not done.done():
        done.set_result(result)
