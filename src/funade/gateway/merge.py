"""Merging concurrent inference requests for one revision into one upstream call.

Requests that can be merged — ``POST /v2/models/{name}/infer`` with a small JSON body, flat
``data``, no ``parameters``, and outputs asked for by name only — are grouped by what makes
them stackable (the revision drawn for them, their inputs' names, datatypes and shapes past the
first axis, the outputs asked for). A request that finds its group idle goes out on the event
loop's next turn (alone, as it came, unless others arrived in the same turn), so a lone request
waits for nothing; requests arriving while the group's call is out wait for it and then go
together, their inputs stacked along the first axis, and the answer
is cut back into one per request. If the merged call is refused (say one request has a value out
of range), every request is sent again on its own, so each gets its own answer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_MERGE_BODY = 64 * 1024
"""Bodies larger than this go alone: merging helps small requests, and parsing costs."""

Answer = tuple[int, list[tuple[bytes, bytes]], bytes, int]
"""(status, headers, body, revision) from the replica."""
Send = Callable[[bytes], Awaitable[Answer]]


@dataclass(frozen=True)
class Request:
    """One mergeable request: its body as it came, parsed, and its rows."""

    body: bytes
    doc: dict[str, Any]
    rows: int


def mergeable(body: bytes) -> tuple[dict[str, Any], int, tuple[Any, ...]] | None:
    """The parsed request, its rows and the key it merges under, or None if it goes alone."""
    if len(body) > MAX_MERGE_BODY:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or set(doc) - {"inputs", "outputs", "id"}:
        return None
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return None
    rows = None
    shapes = []
    for tensor in inputs:
        if not isinstance(tensor, dict) or set(tensor) != {"name", "datatype", "shape", "data"}:
            return None
        shape, data = tensor["shape"], tensor["data"]
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(n, int) and n >= 0 for n in shape)
            or not isinstance(data, list)
            or (data and isinstance(data[0], list))
            or len(data) != math.prod(shape)
            or (rows is not None and shape[0] != rows)
        ):
            return None
        rows = shape[0]
        shapes.append((tensor["name"], tensor["datatype"], tuple(shape[1:])))
    outputs = doc.get("outputs")
    wanted: tuple[str, ...] | None = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and set(o) == {"name"} for o in outputs
        ):
            return None
        wanted = tuple(str(o["name"]) for o in outputs)
    if not rows:
        return None
    return doc, rows, (tuple(shapes), wanted)


def stack(batch: list[Request]) -> bytes:
    """One request whose inputs are the batch's, stacked along the first axis."""
    first = batch[0].doc
    inputs = []
    for index, tensor in enumerate(first["inputs"]):
        data: list[Any] = []
        for request in batch:
            data += request.doc["inputs"][index]["data"]
        shape = [sum(r.rows for r in batch), *tensor["shape"][1:]]
        inputs.append({**tensor, "shape": shape, "data": data})
    merged: dict[str, Any] = {"inputs": inputs}
    if "outputs" in first:
        merged["outputs"] = first["outputs"]
    return orjson.dumps(merged)


def split(payload: bytes, batch: list[Request]) -> list[bytes] | None:
    """The merged answer cut into one answer per request, or None if it cannot be."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list):
        return None
    total = sum(r.rows for r in batch)
    parts: list[list[dict[str, Any]]] = [[] for _ in batch]
    for output in outputs:
        shape, data = output.get("shape"), output.get("data")
        if (
            set(output) - {"name", "datatype", "shape", "data"}
            or not isinstance(shape, list)
            or not shape
            or shape[0] != total
            or not isinstance(data, list)
            or (data and isinstance(data[0], list))
        ):
            return None
        per_row = math.prod(shape[1:])
        if len(data) != total * per_row:
            return None
        offset = 0
        for index, request in enumerate(batch):
            piece = data[offset * per_row : (offset + request.rows) * per_row]
            parts[index].append({**output, "shape": [request.rows, *shape[1:]], "data": piece})
            offset += request.rows
    head = {k: doc[k] for k in ("model_name", "model_version") if k in doc}
    answers = []
    for request, part in zip(batch, parts, strict=True):
        answer = {**head, "outputs": part}
        if "id" in request.doc:
            answer["id"] = request.doc["id"]
        answers.append(orjson.dumps(answer))
    return answers


@dataclass
class _Waiting:
    request: Request
    done: asyncio.Future[Answer]


@dataclass
class _Group:
    waiting: list[_Waiting] = field(default_factory=list)
    busy: bool = False


class Merger:
    """Groups of requests, each sent by ``send`` (which forwards a body to a replica)."""

    def __init__(self, max_rows: int = 64) -> None:
        self.max_rows = max_rows
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self.merged_calls = 0
        self.merged_requests = 0

    async def submit(self, key: tuple[Any, ...], request: Request, send: Send) -> Answer:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        waiting = _Waiting(request, asyncio.get_running_loop().create_future())
        group.waiting.append(waiting)
        if not group.busy:
            group.busy = True
            asyncio.get_running_loop().create_task(self._drain(key, group, send))
        return await waiting.done

    async def _drain(self, key: tuple[Any, ...], group: _Group, send: Send) -> None:
        try:
            while group.waiting:
                batch: list[_Waiting] = []
                rows = 0
                while group.waiting and (
                    not batch or rows + group.waiting[0].request.rows <= self.max_rows
                ):
                    batch.append(group.waiting.pop(0))
                    rows += batch[-1].request.rows
                await self._send(batch, send)
        finally:
            group.busy = False
            if not group.waiting and self._groups.get(key) is group:
                del self._groups[key]

    async def _send(self, batch: list[_Waiting], send: Send) -> None:
        if len(batch) == 1:
            await _settle(batch[0].done, send(batch[0].request.body))
            return
        requests = [w.request for w in batch]
        try:
            status, headers, payload, revision = await send(stack(requests))
        except Exception as exc:
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
            return
        answers = split(payload, requests) if status == 200 else None
        if answers is None:  # one request spoiled the batch (or the answer is odd): one by one
            await asyncio.gather(*(_settle(w.done, send(w.request.body)) for w in batch))
            return
        self.merged_calls += 1
        self.merged_requests += len(batch)
        kept = [(k, v) for k, v in headers if k != b"content-length"]
        for waiting, answer in zip(batch, answers, strict=True):
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
