"""A loaded model behind a batcher: input checks against the signature, timeouts, health.

The model is loaded in a background thread after the server starts, so liveness answers at once
and readiness turns true only when the model can answer. Model code runs in one dedicated
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from funade.errors import FunadeError, InvalidInputError
from funade.registry.model import Model
from funade.registry.signature import Signature, TensorSpec
from funade.registry.tensors import numpy_dtype
from funade.serving.batching import Batcher, BatchStats, Tensors, Wanted
from funade.serving.collector import (
    freeze_what_is_loaded,
    release_what_is_loaded,
    resume_collections,
)
from funade.serving.config import ServeConfig
from funade.serving.metrics import ServingMetrics
from funade.serving.modelthread import ModelThread
from funade.serving.workers import WorkerPeers

log = logging.getLogger("funade.serving")


class ModelTimeoutError(Exception):
    """The model did not answer within the request timeout."""


class NotReadyError(Exception):
    """The model is still loading (or failed to load)."""


@dataclass(frozen=True)
class Loaded:
    """What the loader gives: the model and how to call it."""

    model: Model
    name: str
    version: str | None
    digest: str | None


class ModelRuntime:
    def __init__(
        self,
        config: ServeConfig,
        load: Callable[[], Loaded],
        metrics: ServingMetrics,
        *,
        on_load_failure: Callable[[BaseException], None] | None = None,
        peers: WorkerPeers | None = None,
    ) -> None:
        self.config = config
        self._peers = peers
        self._load = load
        self._on_load_failure = on_load_failure
        self.metrics = metrics
        self.loaded: Loaded | None = None
        self.load_error: str | None = None
        self._thread = ModelThread()
        self._batcher: Batcher | None = None
        self._loader: threading.Thread | None = None
        self._ready = threading.Event()

    # Lifetime ------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loader = threading.Thread(
            target=self._load_model, args=(loop,), name="model-loader", daemon=True
        )
        self._loader.start()

    def _load_model(self, loop: asyncio.AbstractEventLoop) -> None:
        started = time.perf_counter()
        try:
            loaded = self._load()
        except Exception as exc:  # reported by readiness and by every request
            self.load_error = str(exc) if isinstance(exc, FunadeError) else _describe_error(exc)
            log.error("the model failed to load: %s", self.load_error)
            resume_collections()
            if self._on_load_failure is not None:
                loop.call_soon_threadsafe(self._on_load_failure, exc)
            return
        self.metrics.loaded(time.perf_counter() - started)
        loop.call_soon_threadsafe(self._become_ready, loaded)

    def _become_ready(self, loaded: Loaded) -> None:
        batch = self.config.max_batch_size if _batchable(loaded.model.signature) else 1
        self._batcher = Batcher(
            loaded.model.predict_conformed,
            self._thread,
            max_batch_size=batch,
            max_latency_ms=self.config.max_latency_ms,
            on_batch=self._record_batch,
        )
        self._batcher.start()
        freeze_what_is_loaded()
        self.loaded = loaded
        self._ready.set()
        if self._peers is not None:
            self._peers.mark_ready()

    async def stop(self) -> None:
        release_what_is_loaded()
        if self._peers is not None:
            self._peers.mark_gone()
        if self._batcher is not None:
            await self._batcher.stop()
        self._thread.close()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    # Health --------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Loaded, not stuck in a model call, and (with several workers) every worker loaded."""
        return (
            self.loaded is not None
            and not self._overdue(self.config.timeout_ms / 1000)
            and (self._peers is None or self._peers.all_ready())
        )

    @property
    def live(self) -> bool:
        return not self._overdue(self.config.hang_seconds)

    def _overdue(self, seconds: float) -> bool:
        busy = self._batcher.busy_since if self._batcher is not None else None
        return busy is not None and time.perf_counter() - busy > seconds

    # Inference -----------------------------------------------------------------------------

    def require_ready(self) -> Loaded:
        if self.loaded is None:
            if self.load_error is not None:
                raise NotReadyError(f"The model failed to load: {self.load_error}")
            raise NotReadyError("The model is still loading; retry when /v2/health/ready is 200.")
        return self.loaded

    async def infer(self, inputs: Tensors, wanted: Wanted = None) -> Tensors:
        """The model's outputs on ``inputs`` (at least the ``wanted`` ones; None: all)."""
        self.require_ready()
        assert self._batcher is not None
        future = self._batcher.enqueue(inputs, wanted)
        # a timer rather than asyncio.wait_for, which wraps every request in a task of its own
        timer = asyncio.get_running_loop().call_later(
            self.config.timeout_ms / 1000, self._expire, future
        )
        try:
            return await future
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[Tensors]) -> None:
        if not future.done():
            future.set_exception(
                ModelTimeoutError(f"The model did not answer within {self.config.timeout_ms:g} ms.")
            )

    def _record_batch(self, stats: BatchStats) -> None:
        self.metrics.batch(stats.rows, stats.call_seconds, stats.queue_seconds)


def _batchable(signature: Signature) -> bool:
    """Batch only models whose every input has a variable first (batch) dimension."""
    return all(spec.shape and spec.shape[0] == -1 for spec in signature.inputs)


def check_inputs(
    given: Mapping[str, tuple[str | None, npt.NDArray[Any]]],
    signature: Signature,
    *,
    widen: bool = False,
) -> Tensors:
    """Named tensors (with the datatype the client declared, if any) checked against the
    signature: names, datatype and shape; cast to the signature's datatypes.

    A declared datatype (v2, JSON or binary) must be the signature's, as Triton requires: a
    value sent as FP32 to an FP64 input, or as UINT64 (which FP64 cannot hold exactly), is a 400
    naming both. With ``widen`` (a deployment's ``widen_datatypes``), a datatype that converts
    to the signature's without loss (``FP32`` → ``FP64``, ``INT32`` → ``INT64`` or ``FP64``) is
    taken and converted. Undeclared values (v1 ``instances``) are converted when their kind
    fits and their values fit the range, as documented."""
    specs = {spec.name: spec for spec in signature.inputs}
    for name in given:
        if name not in specs:
            raise InvalidInputError(
                f"The model has no input {name!r}.",
                field=f"inputs.{name}",
                value=name,
                fix=f"Send the inputs {_describe(signature.inputs)}.",
            )
    out: Tensors = {}
    for spec in signature.inputs:
        if spec.name not in given:
            raise InvalidInputError(
                f"Input {spec.name!r} is missing.",
                field=f"inputs.{spec.name}",
                value=sorted(given),
                fix=f"Send the inputs {_describe(signature.inputs)}.",
            )
        declared, array = given[spec.name]
        if declared is not None and declared != spec.datatype:
            _check_widening(spec, declared, widen)
        out[spec.name] = _conform(spec, declared, array)
    rows = {a.shape[0] for a in out.values() if a.ndim > 0}
    if len(rows) > 1:
        raise InvalidInputError(
            f"The inputs have different batch sizes {sorted(rows)}.",
            field="inputs",
            value=sorted(rows),
            fix="Send the same number of rows in every input.",
        )
    return out


def widens(declared: str, wanted: str) -> bool:
    """Whether every value of ``declared`` converts to ``wanted`` exactly: a float to a wider
    float, an integer to a wider integer, an integer to a float whose mantissa holds all its
    bits (INT32 to FP64, not INT64). BOOL and BYTES never widen."""
    if {declared, wanted} & {"BOOL", "BYTES"}:
        return False
    have, want = numpy_dtype(declared), numpy_dtype(wanted)
    if have.kind == "f":
        return want.kind == "f" and want.itemsize > have.itemsize
    if want.kind == "f":
        bits = have.itemsize * 8 - (1 if have.kind == "i" else 0)
        return bits <= {2: 11, 4: 24, 8: 53}[want.itemsize]
    return bool(np.can_cast(have, want, casting="safe"))


def _check_widening(spec: TensorSpec, declared: str, widen: bool) -> None:
    """Refuse a declared datatype that is not the signature's, unless widening is on and safe."""
    if widen and widens(declared, spec.datatype):
        return
    fix = f"Send {spec.name!r} as {spec.datatype}"
    if not widen and widens(declared, spec.datatype):
        fix += f", or deploy with widen_datatypes on to have {declared} converted"
    raise InvalidInputError(
        f"Input {spec.name!r} has datatype {declared}; the model takes {spec.datatype}.",
        field=f"inputs.{spec.name}.datatype",
        value=declared,
        fix=fix + ".",
    )


def _conform(spec: TensorSpec, declared: str | None, array: npt.NDArray[Any]) -> Any:
    want = numpy_dtype(spec.datatype)
    have = array.dtype
    bytes_wanted = spec.datatype == "BYTES"
    bytes_given = have.kind in "OSU"
    if bytes_wanted != bytes_given or (
        not bytes_wanted and not np.can_cast(have, want, casting="same_kind")
    ):
        raise InvalidInputError(
            f"Input {spec.name!r} has datatype {declared or have}; the model takes "
            f"{spec.datatype}.",
            field=f"inputs.{spec.name}.datatype",
            value=declared or str(have),
            fix=f"Send {spec.name!r} as {spec.datatype}.",
        )
    shape = list(array.shape)
    if len(shape) != len(spec.shape) or any(
        w not in (-1, s) for s, w in zip(shape, spec.shape, strict=False)
    ):
        raise InvalidInputError(
            f"Input {spec.name!r} has shape {shape}; the model takes {spec.shape} (-1: any size).",
            field=f"inputs.{spec.name}.shape",
            value=shape,
            fix=f"Send {spec.name!r} with shape {spec.shape}.",
        )
    if bytes_wanted or have == want:
        return array
    if not np.can_cast(have, want, casting="safe") and not _fits_range(array, want):
        raise InvalidInputError(
            f"Input {spec.name!r} has values outside the range of {spec.datatype} "
            f"({_value_range(array)}).",
            field=f"inputs.{spec.name}",
            value=_value_range(array),
            fix=f"Send values that fit {spec.datatype}, or send them as {spec.datatype}.",
        )
    return array.astype(want, copy=False)


def _fits_range(array: npt.NDArray[Any], want: np.dtype[Any]) -> bool:
    """True if narrowing ``array`` to ``want`` keeps every value (up to float rounding)."""
    if array.size == 0:
        return True
    if want.kind in "iu":
        info = np.iinfo(want)
        return bool(info.min <= array.min() and array.max() <= info.max)
    if want.kind == "f":
        finite = np.isfinite(array)
        largest = np.abs(array[finite]).max() if finite.any() else 0
        return bool(largest <= np.finfo(want).max)
    return True


def _value_range(array: npt.NDArray[Any]) -> str:
    return f"from {array.min()} to {array.max()}" if array.size else "empty"


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _describe(specs: list[TensorSpec]) -> str:
    return ", ".join(f"{s.name} ({s.datatype} {s.shape})" for s in specs)
