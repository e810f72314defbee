"""The model thread: calls run off the event loop, in order, results and errors delivered."""

from __future__ import annotations

import asyncio
import threading

import pytest

from funade.serving.modelthread import ModelThread


def test_calls_run_in_the_thread_in_order_with_results_and_errors() -> None:
    seen: list[tuple[int, str]] = []

    def work(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        if n == 2:
            raise ValueError("two")
        return n * 10

    async def main() -> list[object]:
        with ModelThread(name="model-test") as thread:
            futures = [thread.call(work, n) for n in range(4)]
            return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:2] == [0, 10]
    assert isinstance(results[2], ValueError)
    assert str(results[2]) == "two"
    assert results[3] == 30
    assert seen == [(n, "model-test") for n in range(4)]


def test_a_cancelled_call_is_not_delivered_and_the_thread_goes_on() -> None:
    gate = threading.Event()

    async def main() -> int:
        with ModelThread() as thread:
            slow = thread.call(gate.wait, 5)
            slow.cancel()
            gate.set()
            return await thread.call(int, "7")

    assert asyncio.run(main()) == 7


def test_a_call_outside_a_running_loop_is_refused() -> None:
    with ModelThread() as thread, pytest.raises(RuntimeError, match="no running event loop"):
        thread.call(int, "1")


def test_send_hands_its_result_or_error_to_a_callback_on_the_loop() -> None:
    def work(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n * 10

    async def main() -> list[tuple[object, object, bool]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[object, object, bool]] = []
        finished = loop.create_future()
        with ModelThread() as thread:
            for n in range(3):

                def done(result: object, error: object, last: bool = n == 2) -> None:
                    in_loop = asyncio.get_running_loop() is loop
                    seen.append((result, error, in_loop))
                    if last:
                        finished.set_result(None)

                thread.send(work, (n,), done)
            await finished
        return seen

    seen = asyncio.run(main())
    assert seen[:2] == [(0, None, True), (10, None, True)]
    result, error, in_loop = seen[2]
    assert result is None
    assert in_loop
    assert isinstance(error, ValueError)
    assert str(error) == "two"
