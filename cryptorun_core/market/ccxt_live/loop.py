"""The ccxt source's event loop: one asyncio loop per source, running in a daemon thread, so ccxt's
HTTP sessions are reused across the synchronous :class:`~cryptorun_core.market.base.MarketSource` calls."""

from __future__ import annotations

import asyncio
import threading
from typing import Awaitable, TypeVar

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running forever in a daemon thread; ``run`` submits and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="cryptorun-ccxt-loop", daemon=True)
        self._thread.start()
        self.closed = False

    def run(self, coro: Awaitable[T]) -> T:
        if self.closed:
            raise RuntimeError("CcxtMarket is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()
