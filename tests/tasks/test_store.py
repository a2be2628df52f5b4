"""The task store on SQLite and on PostgreSQL (the same tests, a real server each)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.errors import ConflictError
from app.tasks.models import Task, TaskStage, TaskStatus
from app.tasks.store import TaskStore


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


async def test_a_store_from_before_task_leases_gains_the_columns(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from app.tasks.store import metadata

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:  # back to the table as it was before leases
        conn.execute(sa.text("DROP INDEX ix_vgw_tasks_lease_until"))
        conn.execute(sa.text("ALTER TABLE vgw_tasks DROP COLUMN lease_until"))
        conn.execute(sa.text("ALTER TABLE vgw_tasks DROP COLUMN lease_owner"))
    engine.dispose()

    store = TaskStore.from_url(url)
    await store.init()
    task, created = await store.create(make_task(lease_owner="me"))
    assert created
    [claimed] = await store.claim_orphans("someone", lease_s=30)
    assert claimed.id == task.id and claimed.lease_owner == "someone"
    await store.aclose()


async def test_leases_decide_who_works_on_a_task(store: TaskStore) -> None:
    task, _ = await store.create(make_task())
    mine = [t.id for t in await store.claim_orphans("proc-a", lease_s=30)]
    assert task.id in mine
    assert task.id not in [t.id for t in await store.claim_orphans("proc-b", lease_s=30)]
    assert await store.renew_leases("proc-b", [task.id], lease_s=30) == set()
    assert await store.renew_leases("proc-a", [task.id], lease_s=30) == {task.id}
    await store.release_leases("proc-a")
    assert task.id in [t.id for t in await store.claim_orphans("proc-b", lease_s=30)]
