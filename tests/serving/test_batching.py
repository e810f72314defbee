"""The adaptive batcher, driven by a fake model that records its calls (no HTTP)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from funade.serving.batching import Batcher, BatchStats
from funade.serving.modelthread import ModelThread


class FakeModel:
    """Doubles its input; records batch sizes; can block until released, or fail on a value."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.wanted: list[frozenset[str] | None] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, inputs: dict[str, Any], wanted: frozenset[str] | None) -> dict[str, Any]:
        self.gate.wait(5)
        x = inputs["x"]
        self.calls.append(len(x))
        self.wanted.append(wanted)
        if (x == -1).any():
            raise ValueError("poison")
        return {"y": x * 2, "z": x + 1}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_lone_request_runs_at_once() -> None:
    model = FakeModel()

    async def main() -> Any:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=8)
            batcher.start()
            out = await batcher.submit({"x": np.array([[1.0]])})
            await batcher.stop()
            return out

    out = run(main())
    np.testing.assert_array_equal(out["y"], [[2.0]])
    assert model.calls == [1]


def test_requests_queued_while_busy_form_one_batch_and_split_back() -> None:
    model = FakeModel()
    stats: list[BatchStats] = []

    async def main() -> list[Any]:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=64, on_batch=stats.append)
            batcher.start()
            model.gate.clear()
            first = asyncio.ensure_future(batcher.submit({"x": np.array([[0.0]])}))
            await asyncio.sleep(0.05)  # the first call is now blocked in the model
            rest = [
                asyncio.ensure_future(batcher.submit({"x": np.full((n, 1), float(n))}))
                for n in (1, 2, 3)
            ]
            await asyncio.sleep(0.05)
            model.gate.set()
            results = await asyncio.gather(first, *rest)
            await batcher.stop()
            return results

    results = run(main())
    assert model.calls == [1, 6]
    for n, out in zip((1, 2, 3), results[1:], strict=True):
        np.testing.assert_array_equal(out["y"], np.full((n, 1), 2.0 * n))
        np.testing.assert_array_equal(out["z"], np.full((n, 1), n + 1.0))
    assert [s.rows for s in stats] == [1, 6]
    assert [s.requests for s in stats] == [1, 3]


def test_max_batch_size_is_respected_and_the_rest_carried_over() -> None:
    model = FakeModel()

    async def main() -> None:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=4)
            batcher.start()
            model.gate.clear()
            first = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1))}))
            await asyncio.sleep(0.05)
            rest = [asyncio.ensure_future(batcher.submit({"x": np.ones((3, 1))})) for _ in range(3)]
            await asyncio.sleep(0.05)
            model.gate.set()
            await asyncio.gather(first, *rest)
            await batcher.stop()

    run(main())
    assert model.calls == [1, 3, 3, 3]
    assert max(model.calls) <= 4


def test_by_default_many_row_requests_merge_and_an_oversized_one_runs_alone() -> None:
    """The default limit (256 rows) merges eight queued 64-row requests into two calls; a
    request with more rows than the limit is not refused, it runs in a call of its own."""
    model = FakeModel()

    async def main() -> None:
        with ModelThread() as pool:
            batcher = Batcher(model, pool)
            model.gate.clear()
            first = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1))}))
            await asyncio.sleep(0.05)
            rest = [
                asyncio.ensure_future(batcher.submit({"x": np.ones((64, 1))})) for _ in range(8)
            ]
            big = asyncio.ensure_future(batcher.submit({"x": np.ones((300, 1))}))
            await asyncio.sleep(0.05)
            model.gate.set()
            answers = await asyncio.gather(first, *rest, big)
            assert [len(a["y"]) for a in answers] == [1] + [64] * 8 + [300]
            await batcher.stop()

    run(main())
    assert model.calls == [1, 256, 256, 300]


def test_max_latency_waits_to_fill_a_batch() -> None:
    model = FakeModel()

    async def main() -> None:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_latency_ms=200)
            batcher.start()
            first = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1))}))
            await asyncio.sleep(0.02)
            second = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1))}))
            await asyncio.gather(first, second)
            await batcher.stop()

    run(main())
    assert model.calls == [2]


def test_a_poisonous_request_fails_alone() -> None:
    model = FakeModel()

    async def main() -> list[Any]:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=8)
            batcher.start()
            model.gate.clear()
            first = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1))}))
            await asyncio.sleep(0.05)
            good = asyncio.ensure_future(batcher.submit({"x": np.ones((1, 1))}))
            bad = asyncio.ensure_future(batcher.submit({"x": -np.ones((1, 1))}))
            await asyncio.sleep(0.05)
            model.gate.set()
            results = await asyncio.gather(first, good, bad, return_exceptions=True)
            await batcher.stop()
            return results

    results = run(main())
    np.testing.assert_array_equal(results[1]["y"], [[2.0]])
    assert isinstance(results[2], ValueError)
    assert str(results[2]) == "poison"
    assert model.calls == [1, 2, 1, 1]


@pytest.mark.parametrize("rows", [1, 5])
def test_outputs_without_a_batch_dimension_turn_batching_off(rows: int) -> None:
    def scalar_model(inputs: dict[str, Any], wanted: frozenset[str] | None) -> dict[str, Any]:
        return {"total": np.array(inputs["x"].sum())}

    async def main() -> list[Any]:
        with ModelThread() as pool:
            batcher = Batcher(scalar_model, pool, max_batch_size=8)
            batcher.start()
            gate = asyncio.ensure_future(batcher.submit({"x": np.ones((rows, 1))}))
            more = [
                asyncio.ensure_future(batcher.submit({"x": np.ones((rows, 1))})) for _ in range(3)
            ]
            results = await asyncio.gather(gate, *more)
            await batcher.stop()
            return [float(r["total"]) for r in results]

    assert run(main()) == [float(rows)] * 4


def test_a_batch_computes_the_outputs_its_requests_want() -> None:
    """The union of what the merged requests ask for; every output if any asks for all."""
    model = FakeModel()

    async def batch(*wanted: frozenset[str] | None) -> None:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=8)
            batcher.start()
            model.gate.clear()
            first = asyncio.ensure_future(batcher.submit({"x": np.zeros((1, 1))}, frozenset()))
            await asyncio.sleep(0.05)
            rest = [
                asyncio.ensure_future(batcher.submit({"x": np.ones((1, 1))}, w)) for w in wanted
            ]
            await asyncio.sleep(0.05)
            model.gate.set()
            await asyncio.gather(first, *rest)
            await batcher.stop()

    run(batch(frozenset({"y"}), frozenset({"z"})))
    assert model.wanted == [frozenset(), frozenset({"y", "z"})]
    model.wanted.clear()
    run(batch(frozenset({"y"}), None))
    assert model.wanted == [frozenset(), None]


def test_a_full_batch_does_not_wait_for_max_latency() -> None:
    model = FakeModel()

    async def main() -> float:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=2, max_latency_ms=5_000)
            started = asyncio.get_running_loop().time()
            await asyncio.gather(
                batcher.submit({"x": np.zeros((1, 1))}), batcher.submit({"x": np.zeros((1, 1))})
            )
            await batcher.stop()
            return asyncio.get_running_loop().time() - started

    assert run(main()) < 2.5  # not the 5 s max_latency
    assert model.calls == [2]


def test_a_request_given_up_while_queued_is_not_run() -> None:
    model = FakeModel()

    async def main() -> Any:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=8)
            model.gate.clear()
            first = batcher.enqueue({"x": np.zeros((1, 1))})
            abandoned = batcher.enqueue({"x": np.full((1, 1), 5.0)})
            kept = batcher.enqueue({"x": np.ones((1, 1))})
            abandoned.cancel()  # its client timed out or went away
            model.gate.set()
            return await asyncio.gather(first, kept)

    _, kept = run(main())
    np.testing.assert_array_equal(kept["y"], [[2.0]])
    assert model.calls == [1, 1]  # the first alone, then only the one still wanted


def test_a_failing_metrics_hook_does_not_stop_the_batcher(caplog: pytest.LogCaptureFixture) -> None:
    model = FakeModel()

    def broken(_: BatchStats) -> None:
        raise RuntimeError("metrics are down")

    async def main() -> list[Any]:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=8, on_batch=broken)
            one = await batcher.submit({"x": np.ones((1, 1))})
            two = await batcher.submit({"x": np.ones((1, 1))})
            return [one, two]

    results = run(main())
    assert [float(r["y"][0, 0]) for r in results] == [2.0, 2.0]
    assert "metrics are down" in caplog.text


def test_a_lone_request_and_concurrent_ones_all_answer_right() -> None:
    """Nothing queued and the model idle: the request goes straight to the model thread; what
    comes while it runs queues and merges; then a lone one again. Every answer is its own, and
    the metrics see every call (its requests, rows and queue times)."""
    model = FakeModel()
    stats: list[BatchStats] = []

    async def main() -> list[Any]:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=64, on_batch=stats.append)
            alone = await batcher.submit({"x": np.array([[1.0], [2.0]])})
            model.gate.clear()
            first = batcher.enqueue({"x": np.array([[3.0]])})  # the model idle: straight to it
            await asyncio.sleep(0.05)
            rest = [batcher.enqueue({"x": np.full((n, 1), 10.0 * n)}) for n in (1, 2)]
            model.gate.set()
            together = await asyncio.gather(first, *rest)
            bad = await asyncio.gather(
                batcher.submit({"x": -np.ones((1, 1))}), return_exceptions=True
            )
            last = await batcher.submit({"x": np.array([[4.0]])})
            return [alone, *together, *bad, last]

    alone, first, one, two, bad, last = run(main())
    np.testing.assert_array_equal(alone["y"], [[2.0], [4.0]])
    np.testing.assert_array_equal(first["y"], [[6.0]])
    np.testing.assert_array_equal(one["y"], [[20.0]])
    np.testing.assert_array_equal(two["z"], [[21.0], [21.0]])
    assert isinstance(bad, ValueError)
    assert str(bad) == "poison"
    np.testing.assert_array_equal(last["y"], [[8.0]])
    assert model.calls == [2, 1, 3, 1, 1]
    assert [(s.requests, s.rows) for s in stats] == [(1, 2), (1, 1), (2, 3), (1, 1), (1, 1)]
    assert stats[0].queue_seconds == [0.0]
    assert all(q >= 0.0 for q in stats[2].queue_seconds)
    assert all(s.call_seconds > 0.0 for s in stats)


def test_a_lone_request_given_up_on_lets_the_next_wait_for_the_model() -> None:
    """A lone request timed out while the model still runs: the next one queues behind the
    call (one model call at a time) and gets its own answer."""
    model = FakeModel()

    async def main() -> Any:
        with ModelThread() as pool:
            batcher = Batcher(model, pool, max_batch_size=8)
            model.gate.clear()
            lone = batcher.enqueue({"x": np.ones((1, 1))})
            lone.set_exception(TimeoutError("given up"))  # as the runtime's timer does
            following = batcher.enqueue({"x": np.full((1, 1), 3.0)})
            assert batcher.busy_since is not None
            await asyncio.sleep(0.05)
            assert model.calls == []
            model.gate.set()
            out = await following
            with pytest.raises(TimeoutError):
                lone.result()
            return out

    np.testing.assert_array_equal(run(main())["y"], [[6.0]])
    assert model.calls == [1, 1]
