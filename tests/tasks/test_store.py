"""The task store on SQLite and on PostgreSQL (the same tests, a real server each)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.db.migrate import upgrade
from app.errors import ConflictError
from app.tasks.models import Task, TaskStage, TaskStatus
from app.tasks.store import TaskStore, tasks_table


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    upgrade(url)
    store = TaskStore.from_url(url)
    yield store
    await store.aclose()


def make_task(owner: str = "owner-a", **fields: object) -> Task:
    fields.setdefault("id", f"vt_{uuid.uuid4().hex}")
    return Task(owner=owner, prompt="p", request={"prompt": "p"}, **fields)  # type: ignore[arg-type]


async def expire_lease(store: TaskStore, task_id: str) -> None:
    """Back-date a lease, as if its holder stalled past it."""

    def apply() -> None:
        with store.write() as conn:
            conn.execute(
                tasks_table.update()
                .where(tasks_table.c.id == task_id)
                .values(lease_until=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
            )

    await store.run(apply)


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


async def test_fenced_writes_need_a_live_lease(store: TaskStore) -> None:
    task, _ = await store.create(make_task(lease_owner="proc-a"), lease_s=30)
    assert task.lease_until is not None and task.lease_until > task.created_at
    assert await store.update(task.id, fence="proc-b", progress=10) is None
    written = await store.update(task.id, fence="proc-a", progress=20)
    assert written is not None and written.progress == 20

    await expire_lease(store, task.id)
    # Out of lease: even the last holder may not write (another process may be taking over).
    assert await store.update(task.id, fence="proc-a", progress=30) is None
    assert await store.renew("proc-a", {task.id}, lease_s=30) == set()
    # Unfenced writes (a client's cancel) still apply.
    cancelled = await store.update(task.id, status=TaskStatus.CANCELLED)
    assert cancelled is not None and cancelled.progress == 20


async def test_a_job_id_is_recorded_once_even_after_the_task_ended(store: TaskStore) -> None:
    task, _ = await store.create(make_task())
    await store.update(task.id, status=TaskStatus.CANCELLED)
    recorded = await store.record_job(task.id, "job-1")
    assert recorded is not None and recorded.provider_task_id == "job-1"
    assert await store.record_job(task.id, "job-2") is None
    found = await store.find_job("", "job-1")
    assert found is None  # provider must match
    await store.note_provider_status(task.id, "cancel requested")
    final = await store.get(task.id)
    assert final is not None and final.provider_task_id == "job-1"
    assert final.provider_status == "cancel requested" and final.status is TaskStatus.CANCELLED


async def test_a_submitted_job_is_recorded_with_its_status_only_while_the_lease_holds(
    store: TaskStore,
) -> None:
    async def record(task: Task, job: str) -> tuple[str | None, str | None, bool]:
        recorded, held = await store.record_submitted_job(
            task.id, job, fence="proc-a", provider_status="submitted"
        )
        assert recorded is not None
        return recorded.provider_task_id, recorded.provider_status, held

    ours, _ = await store.create(make_task(lease_owner="proc-a"), lease_s=30)
    assert await record(ours, "job-1") == ("job-1", "submitted", True)
    # Once recorded, a second id is refused (and nothing else written).
    assert await store.record_submitted_job(
        ours.id, "job-2", fence="proc-a", provider_status="other"
    ) == (None, False)

    # Without the lease (expired, someone else's, cancelled) the id is still written, so the
    # paid job can be found and cancelled, but not the status: that write was not ours to make.
    expired, _ = await store.create(make_task(lease_owner="proc-a"), lease_s=30)
    await expire_lease(store, expired.id)
    taken, _ = await store.create(make_task(lease_owner="proc-b"), lease_s=30)
    cancelled, _ = await store.create(make_task(lease_owner="proc-a"), lease_s=30)
    await store.update(cancelled.id, status=TaskStatus.CANCELLED)
    for task in (expired, taken, cancelled):
        assert await record(task, f"job-{task.id}") == (f"job-{task.id}", None, False)


async def test_claims_take_released_dead_and_expired_tasks_once(store: TaskStore) -> None:
    live, _ = await store.create(make_task(lease_owner="alive"), lease_s=30)
    released, _ = await store.create(make_task())
    dead, _ = await store.create(make_task(lease_owner="dead"), lease_s=30)
    stuck, _ = await store.create(make_task(lease_owner="stuck"), lease_s=30)
    await expire_lease(store, stuck.id)

    claimed = {t.id: t for t in await store.claim("me", lease_s=30, dead_owners={"dead"})}
    assert set(claimed) >= {released.id, dead.id, stuck.id} and live.id not in claimed
    # A graceful hand-over is not an attempt; taking over from a dead or stuck owner is.
    assert claimed[released.id].attempts == 0
    assert claimed[dead.id].attempts == 1 and claimed[stuck.id].attempts == 1
    assert all(t.lease_owner == "me" for t in claimed.values())
    # Nothing is claimed twice.
    again = await store.claim("other", lease_s=30, dead_owners={"dead"})
    assert not {t.id for t in again} & set(claimed)

    assert await store.renew("me", set(claimed), lease_s=30) == set(claimed)
    await store.release("me")
    handed = {t.id for t in await store.claim("other", lease_s=30)}
    assert handed >= set(claimed)


async def test_a_shot_task_is_created_once_and_only_under_a_live_parent_we_hold(
    store: TaskStore,
) -> None:
    parent, _ = await store.create(make_task(lease_owner="me"), lease_s=60)

    def shot(index: int) -> Task:
        return make_task(id=f"{parent.id}-{index:02d}", parent_id=parent.id, shot_index=index)

    made = await store.create_child(shot(0), fence="me", lease_s=60)
    assert made is not None and made[1] and made[0].lease_owner == "me"
    again = await store.create_child(shot(0), fence="me", lease_s=60)
    assert again is not None and not again[1] and again[0].id == made[0].id
    assert await store.create_child(shot(1), fence="someone-else", lease_s=60) is None
    await store.update(parent.id, status=TaskStatus.CANCELLED)
    assert await store.create_child(shot(1), fence="me", lease_s=60) is None
    assert [t.id for t in await store.children(parent.id)] == [made[0].id]
    # Shots are parts of their video: never listed or counted on their own.
    assert [t.id for t in await store.list_for(owner="owner-a")] == [parent.id]
    assert await store.count_for("owner-a") == 1


async def test_only_one_process_sends_a_jobs_cancel(store: TaskStore) -> None:
    task, _ = await store.create(make_task())
    await store.record_job(task.id, "job-1")
    await store.update(task.id, status=TaskStatus.CANCELLED)
    claims = [await store.claim_job_cancel(task.id, "job-1", "cancel requested") for _ in range(3)]
    assert claims == [True, False, False]
    assert await store.claim_job_cancel(task.id, "job-2", "cancel requested") is False
