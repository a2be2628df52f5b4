"""Durable task store on SQLAlchemy Core: SQLite (WAL) by default, any SQLAlchemy URL.

The engine is synchronous; every call runs in a worker thread so the event loop never waits
on the database. ``update`` is guarded: a task that reached a terminal state never changes
again, which is what makes cancel, resume and concurrent replicas safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from app.errors import ConflictError, UnavailableError
from app.tasks.models import TERMINAL_STATUSES, Task, TaskStage, TaskStatus, utcnow

T = TypeVar("T")
IDEMPOTENCY_TTL = dt.timedelta(hours=24)

metadata = sa.MetaData()
tasks_table = sa.Table(
    "vgw_tasks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("stage", sa.String(16)),
    sa.Column("progress", sa.Integer, nullable=False, default=0),
    sa.Column("provider", sa.String(32)),
    sa.Column("provider_task_id", sa.String(200)),
    sa.Column("provider_status", sa.String(64)),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("expanded_prompt", sa.Text),
    sa.Column("expanded_by", sa.String(16)),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("route", sa.JSON, nullable=False),
    sa.Column("video_key", sa.String(400)),
    sa.Column("video_size", sa.BigInteger),
    sa.Column("video_sha256", sa.String(64)),
    sa.Column("filename", sa.String(200)),
    sa.Column("error", sa.JSON),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("callback_url", sa.Text),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("group_id", sa.String(40), index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.DateTime(timezone=True), index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("owner", "idempotency_key", name="uq_vgw_tasks_idempotency"),
)

_FIELDS = [f.name for f in dataclasses.fields(Task)]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; everything we stored was UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _row_to_task(row: sa.Row[Any]) -> Task:
    data = dict(row._mapping)
    data["status"] = TaskStatus(data["status"])
    data["stage"] = TaskStage(data["stage"]) if data["stage"] else None
    for name in ("created_at", "updated_at", "finished_at", "lease_until"):
        data[name] = _utc(data[name])
    return Task(**data)


def _task_to_row(task: Task) -> dict[str, Any]:
    row = {name: getattr(task, name) for name in _FIELDS}
    row["status"] = task.status.value
    row["stage"] = task.stage.value if task.stage else None
    return row


def create_engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


_SELECT_BY_ID = tasks_table.select().where(tasks_table.c.id == sa.bindparam("_task_id"))
_SELECT_BY_ID_AND_OWNER = _SELECT_BY_ID.where(tasks_table.c.owner == sa.bindparam("_owner"))


@functools.lru_cache(maxsize=256)
def _guarded_update(columns: frozenset[str]) -> sa.UpdateBase:
    """``UPDATE … WHERE id = :_task_id AND status is not terminal RETURNING *``, built once per
    set of columns (building statements costs more than running them on the hot path)."""
    return (
        tasks_table.update()
        .where(
            tasks_table.c.id == sa.bindparam("_task_id"),
            tasks_table.c.status.not_in([s.value for s in TERMINAL_STATUSES]),
        )
        .values({name: sa.bindparam(name) for name in sorted(columns)})
        .returning(*tasks_table.c)
    )


class TaskStore:
    """Async facade over a synchronous SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # SQLite has one writer at a time, and its busy handler sleeps in growing steps when
        # threads collide; taking turns in-process is much faster. Other databases need no lock.
        self._write_lock: contextlib.AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._write_lock, self._engine.begin() as conn:
            yield conn

    @classmethod
    def from_url(cls, url: str) -> TaskStore:
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return cls(create_engine_for(url))

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except OperationalError as exc:
            raise UnavailableError("the task store is unavailable") from exc

    async def init(self) -> None:
        def create() -> None:
            metadata.create_all(self._engine)
            # Stores made before task leases existed gain the two columns.
            present = {c["name"] for c in sa.inspect(self._engine).get_columns("vgw_tasks")}
            with self._write() as conn:
                for name in ("lease_owner", "lease_until"):
                    if name not in present:
                        kind = tasks_table.c[name].type.compile(dialect=self._engine.dialect)
                        conn.execute(sa.text(f"ALTER TABLE vgw_tasks ADD COLUMN {name} {kind}"))

        await self._run(create)

    async def check(self) -> None:
        def ping() -> None:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        await self._run(ping)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._engine.dispose)

    async def create(self, task: Task) -> tuple[Task, bool]:
        """Insert ``task``; with an idempotency key, return the live task for that key instead.

        Returns ``(task, created)``. The same key with a different request body is a conflict.
        """

        def insert() -> tuple[Task, bool]:
            with self._write() as conn:
                if task.idempotency_key:
                    existing = self._by_key(conn, task.owner, task.idempotency_key)
                    if existing is not None:
                        if existing.created_at >= utcnow() - IDEMPOTENCY_TTL:
                            return existing, False
                        # The key's 24 h are over: free it for this new request.
                        conn.execute(
                            tasks_table.update()
                            .where(tasks_table.c.id == existing.id)
                            .values(idempotency_key=None)
                        )
                conn.execute(tasks_table.insert().values(**_task_to_row(task)))
            return task, True

        try:
            found, created = await self._run(insert)
        except IntegrityError:
            # Another request with the same key won the race; answer with its task.
            found = await self._run(lambda: self._by_key_tx(task.owner, task.idempotency_key))
            created = False
        if not created and found.request_hash != task.request_hash:
            raise ConflictError(
                "this Idempotency-Key was already used with a different request body"
            )
        return found, created

    def _by_key(self, conn: sa.Connection, owner: str, key: str) -> Task | None:
        row = conn.execute(
            tasks_table.select().where(
                tasks_table.c.owner == owner, tasks_table.c.idempotency_key == key
            )
        ).first()
        return _row_to_task(row) if row else None

    def _by_key_tx(self, owner: str, key: str | None) -> Task:
        with self._engine.connect() as conn:
            found = self._by_key(conn, owner, key or "")
        if found is None:
            raise UnavailableError("idempotent create raced and lost its row")
        return found

    async def get(self, task_id: str, *, owner: str | None = None) -> Task | None:
        def select() -> Task | None:
            query = _SELECT_BY_ID if owner is None else _SELECT_BY_ID_AND_OWNER
            with self._engine.connect() as conn:
                row = conn.execute(query, {"_task_id": task_id, "_owner": owner}).first()
            return _row_to_task(row) if row else None

        return await self._run(select)

    async def list_for(
        self,
        *,
        owner: str,
        status: TaskStatus | None = None,
        group_id: str | None = None,
        provider: str | None = None,
        before: Task | None = None,
        limit: int = 20,
    ) -> list[Task]:
        """Newest first; ``before`` (keyset paging) starts after that task in the same order."""

        def select() -> list[Task]:
            query = tasks_table.select().where(tasks_table.c.owner == owner)
            if status is not None:
                query = query.where(tasks_table.c.status == status.value)
            if group_id is not None:
                query = query.where(tasks_table.c.group_id == group_id)
            if provider is not None:
                query = query.where(tasks_table.c.provider == provider)
            if before is not None:
                created = tasks_table.c.created_at
                query = query.where(
                    sa.or_(
                        created < before.created_at,
                        sa.and_(created == before.created_at, tasks_table.c.id > before.id),
                    )
                )
            query = query.order_by(tasks_table.c.created_at.desc(), tasks_table.c.id).limit(limit)
            with self._engine.connect() as conn:
                return [_row_to_task(row) for row in conn.execute(query)]

        return await self._run(select)

    async def claim_orphans(self, owner: str, *, lease_s: float) -> list[Task]:
        """Take over unfinished tasks that no live process holds (no lease, or it ran out).

        Each claim is its own guarded UPDATE, so two processes never claim the same task.
        """

        def claim() -> list[Task]:
            now = utcnow()
            orphaned = sa.or_(tasks_table.c.lease_until.is_(None), tasks_table.c.lease_until < now)
            live = tasks_table.c.status.not_in([s.value for s in TERMINAL_STATUSES])
            claimed = []
            with self._engine.connect() as conn:
                ids = [
                    row.id
                    for row in conn.execute(
                        sa.select(tasks_table.c.id)
                        .where(live, orphaned)
                        .order_by(tasks_table.c.created_at)
                    )
                ]
            for task_id in ids:
                with self._write() as conn:
                    row = conn.execute(
                        tasks_table.update()
                        .where(tasks_table.c.id == task_id, live, orphaned)
                        .values(lease_owner=owner, lease_until=now + dt.timedelta(seconds=lease_s))
                        .returning(*tasks_table.c)
                    ).first()
                if row is not None:
                    claimed.append(_row_to_task(row))
            return claimed

        return await self._run(claim)

    async def renew_leases(self, owner: str, task_ids: list[str], *, lease_s: float) -> set[str]:
        """Extend ``owner``'s leases; return the ids it still holds on unfinished tasks."""
        if not task_ids:
            return set()

        def renew() -> set[str]:
            with self._write() as conn:
                rows = conn.execute(
                    tasks_table.update()
                    .where(
                        tasks_table.c.id.in_(task_ids),
                        tasks_table.c.lease_owner == owner,
                        tasks_table.c.status.not_in([s.value for s in TERMINAL_STATUSES]),
                    )
                    .values(lease_until=utcnow() + dt.timedelta(seconds=lease_s))
                    .returning(tasks_table.c.id)
                )
                return {row.id for row in rows}

        return await self._run(renew)

    async def release_leases(self, owner: str) -> None:
        """Hand ``owner``'s unfinished tasks to whichever process claims them next."""

        def release() -> None:
            with self._write() as conn:
                conn.execute(
                    tasks_table.update()
                    .where(tasks_table.c.lease_owner == owner)
                    .values(lease_owner=None, lease_until=None)
                )

        await self._run(release)

    async def unfinished(self) -> list[Task]:
        def select() -> list[Task]:
            query = (
                tasks_table.select()
                .where(tasks_table.c.status.not_in([s.value for s in TERMINAL_STATUSES]))
                .order_by(tasks_table.c.created_at)
            )
            with self._engine.connect() as conn:
                return [_row_to_task(row) for row in conn.execute(query)]

        return await self._run(select)

    async def update(self, task_id: str, **changes: Any) -> Task | None:
        """Apply ``changes`` unless the task is already terminal; return the new task or None."""
        values = dict(changes)
        if "status" in values:
            status = TaskStatus(values["status"])
            values["status"] = status.value
            if status.is_terminal:
                values.setdefault("finished_at", utcnow())
                values.setdefault("stage", None)
        if isinstance(values.get("stage"), TaskStage):
            values["stage"] = values["stage"].value
        values["updated_at"] = utcnow()

        statement = _guarded_update(frozenset(values))

        def apply() -> Task | None:
            with self._write() as conn:
                row = conn.execute(statement, {"_task_id": task_id, **values}).first()
            return _row_to_task(row) if row is not None else None

        return await self._run(apply)
