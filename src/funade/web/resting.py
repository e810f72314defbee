"""uvicorn's server at rest: a tick a second rather than ten.

uvicorn's main loop wakes every 0.1 s to refresh its ``date`` header (once a second) and to see
whether it should stop; at rest that was a fifth of `funade up`'s idle CPU (benchmarks/gateway:
the platform with one deployment and no traffic). ``RestingServer`` ticks once a second, as
often as the header changes, and a stop asked for by a signal wakes it at once. A stop asked
for by setting ``should_exit`` from another thread is seen within the second.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

TICK_SECONDS = 1.0


class RestingServer(uvicorn.Server):
    _woken: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._woken = asyncio.get_running_loop(), asyncio.Event()
        ticks = 0
        should_exit = await self.on_tick(ticks)
        while not should_exit:
            ticks = (ticks + 10) % 864000  # uvicorn's count of 0.1 s ticks: the date each time
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), TICK_SECONDS)
            should_exit = await self.on_tick(ticks)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing waits
                loop.call_soon_threadsafe(woken.set)
