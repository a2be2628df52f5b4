"""A relay's stage writes (``app.tasks.pipeline._StageWrites``): asked for as the relay goes,
committed in the order asked, and the final write's outcome is the relay's.

The store here is a stand-in that records when each write starts and lets the test finish
them; what the real stores do with the writes is covered by the gateway tests (the SSE test
sees every stage, in order, on SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.tasks.models import Task
from app.tasks.pipeline import LeaseLostError, _StageWrites

pytestmark = pytest.mark.anyio


class Writes:
    """Each write waits until the test lets it finish (or fail)."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []
        self.gates: list[asyncio.Future[None]] = []

    async def update(self, task_id: str, **changes: Any) -> Task:
        self.started.append(changes)
        gate = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        await gate
        return Task(id=task_id, owner="o", prompt="p", request={})

    async def settled(self) -> None:
        for _ in range(5):
            await asyncio.sleep(0)


async def two_writes(*, in_order: bool, second: dict[str, Any]) -> tuple[Writes, _StageWrites]:
    """A relay that asked for "downloading" and then ``second``, once both had their chance."""
    writes = Writes()
    stages = _StageWrites("t1", writes.update, in_order=in_order)
    stages.write(stage="downloading")
    stages.write(**second)
    await writes.settled()
    return writes, stages


async def test_in_order_store_gets_every_write_at_once_in_the_order_asked() -> None:
    writes = Writes()
    stages = _StageWrites("t1", writes.update, in_order=True)
    stages.write(stage="downloading")
    stages.write(stage="uploading")
    stages.write(status="succeeded")
    await writes.settled()
    assert [w.get("stage", w.get("status")) for w in writes.started] == [
        "downloading",
        "uploading",
        "succeeded",
    ]
    for gate in writes.gates:
        gate.set_result(None)
    assert (await stages.settle()) is not None


async def test_other_stores_get_each_write_after_the_one_before() -> None:
    writes, stages = await two_writes(in_order=False, second={"stage": "uploading"})
    assert [w["stage"] for w in writes.started] == ["downloading"]
    writes.gates[0].set_result(None)
    await writes.settled()
    assert [w["stage"] for w in writes.started] == ["downloading", "uploading"]
    writes.gates[1].set_result(None)
    await stages.settle()


async def test_a_lost_lease_in_a_stage_write_fails_the_final_one() -> None:
    writes, stages = await two_writes(in_order=False, second={"status": "succeeded"})
    writes.gates[0].set_exception(LeaseLostError("t1"))
    with pytest.raises(LeaseLostError):
        await stages.settle()
    assert len(writes.started) == 1  # the final write was never sent


async def test_drain_waits_for_every_write_and_swallows_their_errors() -> None:
    writes, stages = await two_writes(in_order=True, second={"stage": "uploading"})
    writes.gates[0].set_exception(LeaseLostError("t1"))
    draining = asyncio.ensure_future(stages.drain())
    await writes.settled()
    assert not draining.done()  # the second write is still under way
    writes.gates[1].set_result(None)
    await draining
