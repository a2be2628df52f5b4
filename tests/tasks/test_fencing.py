"""A process that lost a task's lease (it stalled; another took over) stops at its next write:
it neither submits, nor overwrites, nor publishes a video."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.db.migrate import upgrade
from app.prompts.service import PromptService
from app.providers.registry import ProviderRegistry
from app.storage.local import LocalStorage
from app.tasks.models import Task, TaskStatus
from app.tasks.pipeline import Pipeline
from app.tasks.signals import Signals
from app.tasks.store import TaskStore
from tests.conftest import make_settings
from tests.fakes import ControlledProvider

pytestmark = pytest.mark.anyio


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
        upgrade(url)
        self.settings = make_settings(tmp_path / "data")
        self.store = TaskStore.from_url(url)
        self.fake = ControlledProvider()
        self.storage = LocalStorage(tmp_path / "files", signing_key=b"k" * 32, base_url="http://x")
        self.pipelines: list[Pipeline] = []

    def pipeline(self, instance_id: str) -> Pipeline:
        pipeline = Pipeline(
            settings=self.settings,
            store=self.store,
            providers=ProviderRegistry({"fake": self.fake}, default="fake"),
            storage=self.storage,
            prompts=PromptService.from_settings(self.settings),
            changes=Signals(),
            nudges=Signals(),
            instance_id=instance_id,
        )
        self.pipelines.append(pipeline)
        return pipeline

    async def aclose(self) -> None:
        """As the gateway does at shutdown: background work (posters) stops while the loop runs.
        Left to the event loop's own teardown, a poster cancelled while its ffmpeg is starting
        can hang it (asyncio cancels its own pipe set-up too, and then waits forever)."""
        for pipeline in self.pipelines:
            await pipeline.extras.aclose()

    async def task(self, owner: str, **fields: Any) -> Task:
        task = Task(
            id="vt_fenced", owner="tenant", prompt="p", request={"prompt": "p"},
            route={"chain": ["fake"]}, lease_owner=owner, **fields,
        )  # fmt: skip
        stored, _ = await self.store.create(task, lease_s=60)
        return stored

    def stored_files(self) -> list[Path]:
        return [p for p in (self.storage.root).rglob("*") if p.is_file()]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    setup = Setup(tmp_path)
    yield setup
    await setup.aclose()


async def take_over(setup: Setup, task_id: str, new_owner: str) -> None:
    """What ``claim`` does once the old holder is dead or its lease ran out."""
    await setup.store.release("stalled", {task_id})
    [claimed] = await setup.store.claim(new_owner, lease_s=60)
    assert claimed.id == task_id


async def test_a_stale_process_does_not_submit(setup: Setup) -> None:
    task = await setup.task("stalled")
    await take_over(setup, task.id, "successor")
    await setup.pipeline("stalled").run(task)
    assert setup.fake.submits == []
    stored = await setup.store.get(task.id)
    assert stored is not None and stored.status is TaskStatus.QUEUED
    assert stored.lease_owner == "successor"


async def test_a_stale_process_does_not_publish_a_video(setup: Setup) -> None:
    task = await setup.task("stalled")
    stalled = asyncio.create_task(setup.pipeline("stalled").run(task))
    for _ in range(200):  # until it polls its job
        current = await setup.store.get(task.id)
        if current is not None and current.provider_task_id:
            break
        await asyncio.sleep(0.02)
    await take_over(setup, task.id, "successor")
    setup.fake.release()  # the job is done: the stale process may try to publish it
    await asyncio.wait_for(stalled, 30)

    stored = await setup.store.get(task.id)
    assert stored is not None and stored.status is TaskStatus.RUNNING
    assert stored.video_key is None and stored.lease_owner == "successor"
    assert setup.stored_files() == []  # nothing uploaded, or it was removed again
    assert len(setup.fake.submits) == 1

    # The new holder finishes it with the job that exists.
    await setup.pipeline("successor").run(stored, resumed=True)
    done = await setup.store.get(task.id)
    assert done is not None and done.status is TaskStatus.SUCCEEDED
    assert len(setup.fake.submits) == 1 and len(setup.stored_files()) == 1
