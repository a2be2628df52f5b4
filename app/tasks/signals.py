"""In-process wake-ups: "task X changed" for long-polls, "poll X now" for provider callbacks.

Waiters always re-read the store after waking (or timing out), so a missed signal costs at
most one timeout; with several replicas the timeout is what picks up other processes' changes.
"""

from __future__ import annotations

import asyncio


class Signals:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def fire(self, key: str) -> None:
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    async def wait(self, key: str, seconds: float) -> bool:
        """Wait until ``fire(key)`` or ``seconds``; True when fired."""
        event = self._events.setdefault(key, asyncio.Event())
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await event.wait()
            return True
        except TimeoutError:
            return False

    def discard(self, key: str) -> None:
        self._events.pop(key, None)
