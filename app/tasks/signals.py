"""In-process wake-ups: "task X ended" for long-polls, "poll X now" for provider callbacks.

A signal may carry the new state (the ended task), which saves its waiters a trip to the store.
Waiters that time out re-read the store themselves, so a missed signal costs at most one
timeout; with several replicas, the timeout is what picks up other processes' changes.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Signals(Generic[T]):
    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Future[T | None]] = {}

    def fire(self, key: str, payload: T | None = None) -> None:
        future = self._waiters.pop(key, None)
        if future is not None and not future.done():
            future.set_result(payload)

    async def wait(self, key: str, seconds: float) -> T | None:
        """Wait until ``fire(key, …)`` (its payload) or ``seconds`` have passed (None)."""
        future = self._waiters.get(key)
        if future is None or future.done():
            future = self._waiters[key] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                # Shielded: one waiter timing out must not cancel the others' future.
                return await asyncio.shield(future)
        except TimeoutError:
            return None

    def discard(self, key: str) -> None:
        future = self._waiters.pop(key, None)
        if future is not None and not future.done():
            future.cancel()
