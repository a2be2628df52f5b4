"""Completion callbacks: POST the task to the client's ``callback_url`` on a terminal state.

Delivery is best effort with bounded retries (3 tries, 1 s / 2 s back-off plus jitter) on
transport errors, 408, 429 and 5xx. The body is the public task object; receivers should
re-GET the task with their token before trusting it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import httpx

logger = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookSender:
    def __init__(
        self, http: httpx.AsyncClient, *, attempts: int = 3, base_delay_s: float = 1.0
    ) -> None:
        self._http = http
        self._attempts = attempts
        self._base_delay_s = base_delay_s
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, url: str, payload: dict[str, Any]) -> None:
        task = asyncio.create_task(self._deliver(url, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        task_id = payload.get("id")
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._http.post(
                    url, json=payload, timeout=httpx.Timeout(10.0, connect=5.0)
                )
                if response.status_code not in RETRY_STATUSES:
                    if response.is_error:
                        logger.warning(
                            "callback for task %s refused: HTTP %s", task_id, response.status_code
                        )
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            if attempt < self._attempts:
                delay = self._base_delay_s * 2 ** (attempt - 1)
                await asyncio.sleep(delay + random.uniform(0, delay / 2))
        logger.warning(
            "callback for task %s failed after %d tries (%s)", task_id, self._attempts, reason
        )

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
        for task in self._pending:
            task.cancel()
