"""Batches in the database: one row per batch, one per CSV row, next to the tasks they become.

A batch row carries a lease like a task (``lease_owner``, ``lease_until`` on the database's
clock): the process holding it feeds the batch's rows into tasks. A CSV row moves
``pending`` → ``fed`` (it has a task; its outcome is the task's status) or ends ``failed``
(invalid, or refused at create) or ``cancelled`` (the batch was cancelled first).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.db import metadata
from app.db.engine import db_later, db_now
from app.tasks.models import TaskStatus, utcnow
from app.tasks.store import TaskStore, tasks_table

batches_table = sa.Table(
    "vgw_batches",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("filename", sa.String(200)),
    sa.Column("columns", sa.JSON, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

batch_rows_table = sa.Table(
    "vgw_batch_rows",
    metadata,
    sa.Column("batch_id", sa.String(40), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("cells", sa.JSON, nullable=False),
    sa.Column("body", sa.JSON),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("task_id", sa.String(40)),
    sa.Column("error", sa.JSON),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
)

RUNNING, COMPLETED, CANCELLED = "running", "completed", "cancelled"
PENDING, FED, FAILED = "pending", "fed", "failed"
COUNT_KEYS = ("queued", "running", "succeeded", "failed", "cancelled")
_B = batches_table.c
_R = batch_rows_table.c
_T = tasks_table.c
_LIVE_TASK = _T.status.in_([s.value for s in TaskStatus if not s.is_terminal])


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


@dataclass(kw_only=True)
class Batch:
    id: str
    owner: str
    status: str
    filename: str | None
    columns: list[str]
    total: int
    concurrency: int
    lease_owner: str | None
    lease_until: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, row: sa.Row[Any]) -> Batch:
        data = dict(row._mapping)
        for name in ("lease_until", "created_at", "updated_at", "finished_at"):
            data[name] = _utc(data[name])
        return cls(**data)


@dataclass(kw_only=True)
class BatchRow:
    batch_id: str
    idx: int
    cells: list[str]
    body: dict[str, Any] | None
    status: str
    task_id: str | None
    error: dict[str, Any] | None
    attempts: int
    next_attempt_at: dt.datetime | None


@dataclass(kw_only=True)
class ResultRow:
    idx: int
    cells: list[str]
    status: str  # the row's outcome in the task vocabulary
    task_id: str | None
    video_key: str | None
    error: dict[str, Any] | None


class BatchStore:
    """Batch queries on the task store's engine (same thread discipline, same 503s)."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store

    async def create(self, batch: Batch, rows: list[BatchRow]) -> None:
        batch_values = {
            name: getattr(batch, name) for name in batch.__dataclass_fields__ if name != "status"
        }
        batch_values["status"] = batch.status
        row_values = [
            {name: getattr(row, name) for name in row.__dataclass_fields__} for row in rows
        ]

        def insert() -> None:
            with self._store.write() as conn:
                conn.execute(batches_table.insert().values(**batch_values))
                conn.execute(batch_rows_table.insert(), row_values)

        await self._store.run(insert)

    async def get(self, batch_id: str, *, owner: str | None = None) -> Batch | None:
        query = batches_table.select().where(_B.id == batch_id)
        if owner is not None:
            query = query.where(_B.owner == owner)

        def select() -> Batch | None:
            with self._store.engine.connect() as conn:
                row = conn.execute(query).first()
            return Batch.of(row) if row else None

        return await self._store.run(select)

    async def list_for(self, owner: str, *, limit: int) -> list[Batch]:
        query = (
            batches_table.select()
            .where(_B.owner == owner)
            .order_by(_B.created_at.desc(), _B.id)
            .limit(limit)
        )

        def select() -> list[Batch]:
            with self._store.engine.connect() as conn:
                return [Batch.of(row) for row in conn.execute(query)]

        return await self._store.run(select)

    async def counts(self, batch_ids: Collection[str]) -> dict[str, dict[str, int]]:
        """Rows by outcome (task statuses; pending rows count as queued), per batch."""
        query = (
            sa.select(_R.batch_id, _R.status, _T.status.label("task_status"), sa.func.count())
            .select_from(batch_rows_table.outerjoin(tasks_table, _T.id == _R.task_id))
            .where(_R.batch_id.in_(list(batch_ids)))
            .group_by(_R.batch_id, _R.status, _T.status)
        )

        def select() -> dict[str, dict[str, int]]:
            found = {batch_id: dict.fromkeys(("total", *COUNT_KEYS), 0) for batch_id in batch_ids}
            with self._store.engine.connect() as conn:
                for batch_id, row_status, task_status, n in conn.execute(query):
                    key = _outcome(row_status, task_status)
                    found[batch_id][key] += n
                    found[batch_id]["total"] += n
            return found

        return await self._store.run(select)

    async def results(self, batch_id: str) -> list[ResultRow]:
        query = (
            sa.select(
                _R.idx, _R.cells, _R.status, _R.task_id, _R.error, _T.status, _T.video_key, _T.error
            )
            .select_from(batch_rows_table.outerjoin(tasks_table, _T.id == _R.task_id))
            .where(_R.batch_id == batch_id)
            .order_by(_R.idx)
        )

        def select() -> list[ResultRow]:
            with self._store.engine.connect() as conn:
                rows = conn.execute(query).all()
            return [
                ResultRow(
                    idx=row[0],
                    cells=list(row[1]),
                    status=_outcome(row[2], row[5]),
                    task_id=row[3],
                    video_key=row[6] if row[5] == TaskStatus.SUCCEEDED.value else None,
                    error=row[7] or row[4],
                )
                for row in rows
            ]

        return await self._store.run(select)

    async def live_task_ids(self, batch_id: str) -> list[str]:
        """The batch's tasks that have not ended."""
        query = (
            sa.select(_R.task_id)
            .select_from(batch_rows_table.join(tasks_table, _T.id == _R.task_id))
            .where(_R.batch_id == batch_id, _LIVE_TASK)
        )

        def select() -> list[str]:
            with self._store.engine.connect() as conn:
                return [row.task_id for row in conn.execute(query)]

        return await self._store.run(select)

    async def due_rows(self, batch_id: str, *, limit: int) -> list[BatchRow]:
        """The next pending rows in file order (those waiting out a 429 only once it is over)."""
        query = (
            batch_rows_table.select()
            .where(
                _R.batch_id == batch_id,
                _R.status == PENDING,
                sa.or_(_R.next_attempt_at.is_(None), _R.next_attempt_at <= utcnow()),
            )
            .order_by(_R.idx)
            .limit(limit)
        )

        def select() -> list[BatchRow]:
            with self._store.engine.connect() as conn:
                rows = conn.execute(query).all()
            return [
                BatchRow(**{**row._mapping, "next_attempt_at": _utc(row.next_attempt_at)})
                for row in rows
            ]

        return await self._store.run(select)

    async def pending(self, batch_id: str) -> int:
        query = sa.select(sa.func.count()).where(_R.batch_id == batch_id, _R.status == PENDING)

        def select() -> int:
            with self._store.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

        return await self._store.run(select)

    def _held(self, batch_id: str, owner: str) -> sa.ColumnElement[bool]:
        """The batch is still running and leased to ``owner`` (fencing for row writes)."""
        return sa.exists().where(
            _B.id == batch_id,
            _B.status == RUNNING,
            _B.lease_owner == owner,
            _B.lease_until > db_now(self._store.dialect),
        )

    async def update_row(self, batch_id: str, idx: int, *, fence: str, **values: Any) -> bool:
        """Write a pending row while ``fence`` holds the running batch; False otherwise."""
        statement = (
            batch_rows_table.update()
            .where(
                _R.batch_id == batch_id,
                _R.idx == idx,
                _R.status == PENDING,
                self._held(batch_id, fence),
            )
            .values(**values)
        )

        def apply() -> bool:
            with self._store.write() as conn:
                return conn.execute(statement).rowcount == 1

        return await self._store.run(apply)

    async def finish(self, batch_id: str, status: str) -> Batch | None:
        """Mark a running batch ended (and its pending rows cancelled, when cancelling)."""
        statement = (
            batches_table.update()
            .where(_B.id == batch_id, _B.status == RUNNING)
            .values(
                status=status,
                finished_at=utcnow(),
                updated_at=utcnow(),
                lease_owner=None,
                lease_until=None,
            )
            .returning(*batches_table.c)
        )
        cancel_rows = (
            batch_rows_table.update()
            .where(_R.batch_id == batch_id, _R.status == PENDING)
            .values(status=CANCELLED)
        )

        def apply() -> Batch | None:
            with self._store.write() as conn:
                row = conn.execute(statement).first()
                if row is not None and status == CANCELLED:
                    conn.execute(cancel_rows)
            return Batch.of(row) if row else None

        return await self._store.run(apply)

    # -- leases -----------------------------------------------------------------------------

    async def lease_owners(self) -> tuple[set[str], bool]:
        """The owners of running batches, and whether any is released or out of lease (a read,
        so a process with nothing to claim does not take SQLite's write lock every round)."""
        expired = sa.func.min(_B.lease_until) < db_now(self._store.dialect)
        query = (
            sa.select(_B.lease_owner, expired.label("expired"))
            .where(_B.status == RUNNING)
            .group_by(_B.lease_owner)
        )

        def select() -> tuple[set[str], bool]:
            with self._store.engine.connect() as conn:
                rows = conn.execute(query).all()
            owners = {row.lease_owner for row in rows if row.lease_owner}
            claimable = any(row.lease_owner is None or bool(row.expired) for row in rows)
            return owners, claimable

        return await self._store.run(select)

    async def claim(
        self, owner: str, *, lease_s: float, dead_owners: Collection[str] = ()
    ) -> list[str]:
        """Take the running batches nobody holds (released, dead owner, or out of lease)."""
        dialect = self._store.dialect
        statement = (
            batches_table.update()
            .where(
                _B.status == RUNNING,
                sa.or_(
                    _B.lease_owner.is_(None),
                    _B.lease_owner.in_(list(dead_owners)),
                    _B.lease_until < db_now(dialect),
                ),
            )
            .values(lease_owner=owner, lease_until=db_later(dialect, sa.literal(lease_s)))
            .returning(_B.id)
        )

        def apply() -> list[str]:
            with self._store.write() as conn:
                return [row.id for row in conn.execute(statement)]

        return await self._store.run(apply)

    async def renew(self, owner: str, batch_ids: Collection[str], *, lease_s: float) -> set[str]:
        if not batch_ids:
            return set()
        dialect = self._store.dialect
        statement = (
            batches_table.update()
            .where(
                _B.id.in_(list(batch_ids)),
                _B.status == RUNNING,
                _B.lease_owner == owner,
                _B.lease_until > db_now(dialect),
            )
            .values(lease_until=db_later(dialect, sa.literal(lease_s)))
            .returning(_B.id)
        )

        def apply() -> set[str]:
            with self._store.write() as conn:
                return {row.id for row in conn.execute(statement)}

        return await self._store.run(apply)

    async def release(self, owner: str) -> None:
        statement = (
            batches_table.update()
            .where(_B.lease_owner == owner, _B.status == RUNNING)
            .values(lease_owner=None, lease_until=None)
        )

        def apply() -> None:
            with self._store.write() as conn:
                conn.execute(statement)

        await self._store.run(apply)


def _outcome(row_status: str, task_status: str | None) -> str:
    if row_status == FED:
        return task_status or TaskStatus.QUEUED.value
    if row_status == PENDING:
        return TaskStatus.QUEUED.value
    return row_status  # failed | cancelled
