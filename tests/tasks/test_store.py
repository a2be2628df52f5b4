"""The task store on SQLite and on PostgreSQL (the same tests, a real server each)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from app.errors import ConflictError
from app.tasks.models import Task, TaskStage, TaskStatus
from app.tasks.store import TaskStore

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"vgw_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = TaskStore.from_url(url)
    await store.init()
    yield store
    await store.aclose()


def make_task(owner: str = "owner-a", **fields: object) -> Task:
    return Task(
        id=f"vt_{uuid.uuid4().hex}", owner=owner, prompt="p", request={"prompt": "p"}, **fields
    )  # type: ignore[arg-type]


pytestmark = pytest.mark.anyio


async def test_create_get_and_owner_scoping(store: TaskStore) -> None:
    task, created = await store.create(make_task(metadata={"k": "v"}))
    assert created
    again = await store.get(task.id)
    assert again is not None and again.metadata == {"k": "v"} and again.status is TaskStatus.QUEUED
    assert again.created_at.tzinfo is not None
    assert await store.get(task.id, owner="someone-else") is None


async def test_terminal_tasks_never_change(store: TaskStore) -> None:
    task, _ = await store.create(make_task())
    running = await store.update(task.id, status=TaskStatus.RUNNING, stage=TaskStage.GENERATING)
    assert running is not None and running.stage is TaskStage.GENERATING
    done = await store.update(task.id, status=TaskStatus.CANCELLED)
    assert done is not None and done.finished_at is not None and done.stage is None
    assert await store.update(task.id, status=TaskStatus.SUCCEEDED) is None
    final = await store.get(task.id)
    assert final is not None and final.status is TaskStatus.CANCELLED


async def test_idempotency_key_dedupes_per_owner(store: TaskStore) -> None:
    key = f"key-{uuid.uuid4().hex}"
    first, created = await store.create(make_task(idempotency_key=key, request_hash="h1"))
    same, created_again = await store.create(make_task(idempotency_key=key, request_hash="h1"))
    assert created and not created_again and same.id == first.id
    with pytest.raises(ConflictError):
        await store.create(make_task(idempotency_key=key, request_hash="h2"))
    other, other_created = await store.create(
        make_task(owner="owner-b", idempotency_key=key, request_hash="h1")
    )
    assert other_created and other.id != first.id


async def test_unfinished_and_listing(store: TaskStore) -> None:
    owner = f"owner-{uuid.uuid4().hex}"
    a, _ = await store.create(make_task(owner))
    b, _ = await store.create(make_task(owner))
    await store.update(a.id, status=TaskStatus.SUCCEEDED)
    unfinished = {t.id for t in await store.unfinished()}
    assert b.id in unfinished and a.id not in unfinished
    assert [t.id for t in await store.list_for(owner=owner)] == [b.id, a.id]
    assert [t.id for t in await store.list_for(owner=owner, status=TaskStatus.SUCCEEDED)] == [a.id]
