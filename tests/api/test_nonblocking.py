"""``/generate-video`` never blocks the event loop, however many calls are waiting."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import GatewayFactory
from tests.fakes import ControlledProvider


def test_healthz_answers_while_100_generate_calls_wait(gateway_factory: GatewayFactory) -> None:
    fake = ControlledProvider()
    with gateway_factory(extra_providers={"fake": fake}) as gateway:

        async def scenario() -> tuple[int, int, list[int]]:
            limits = httpx.Limits(max_connections=200)
            headers = {"Authorization": f"Bearer {gateway.token}"}
            async with httpx.AsyncClient(
                base_url=gateway.base_url, headers=headers, timeout=60, limits=limits
            ) as client:
                body = {"prompt": "wait", "duration_ms": 500, "fps": 4, "provider": "fake"}
                calls = [
                    asyncio.create_task(client.post("/generate-video", json=body))
                    for _ in range(100)
                ]
                while True:  # all 100 accepted and parked on their tasks
                    listed = await client.get(
                        "/v1/tasks", params={"limit": 100, "status": "running"}
                    )
                    if len(listed.json()["data"]) == 100:
                        break
                    await asyncio.sleep(0.05)
                health = await client.get("/healthz")
                pending = sum(1 for call in calls if not call.done())
                fake.release()
                responses = await asyncio.gather(*calls)
                return health.status_code, pending, [r.status_code for r in responses]

        health, pending, statuses = asyncio.run(scenario())
    assert health == 200
    assert pending == 100  # /healthz answered while every generate call was still waiting
    assert statuses == [200] * 100
    assert len(fake.submits) == 100
