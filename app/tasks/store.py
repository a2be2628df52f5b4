"""Durable task store on SQLAlchemy Core: SQLite (WAL) by default, any SQLAlchemy URL.

The engine is synchronous; every call runs in a worker thread so the event loop never waits
on the database. The schema is Alembic's (``app/db/migrations``); this module declares the
table for queries only.

Writes come in three kinds:

* ``update(task_id, …)`` is guarded: a task that reached a terminal state never changes again,
  which is what makes cancel, resume and concurrent replicas safe. With ``fence=owner`` it is
  also *fenced*: it applies only while ``owner`` still holds the task's lease (on the database's
  clock). The pipeline writes only this way, so a process that lost a task (it stalled, or lost
  its database connection, and another took over) stops at its next write.
* ``record_job`` writes the provider's job id once, whoever holds the task and even after it
  ended: a paid job is a fact about the world that must never be forgotten.
* lease operations (``claim``, ``renew``, ``release``) used by ``app.tasks.leases``.

A terminal transition and the webhook events it causes are written in one transaction
(``app.tasks.outbox``), so a crash can never end a task and lose its callback.

On SQLite every write of this store goes through one writer thread that commits whatever
arrived together in one transaction (``app.db.group_commit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from app.db import metadata
from app.db.engine import create_engine_for, db_later, db_now
from app.db.group_commit import GroupCommit
from app.db.prepared import runnable
from app.errors import ConflictError, UnavailableError
from app.tasks import events, outbox
from app.tasks.models import Task, TaskStage, TaskStatus, utcnow

T = TypeVar("T")
IDEMPOTENCY_TTL = dt.timedelta(hours=24)

tasks_table = sa.Table(
    "vgw_tasks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("stage", sa.String(16)),
    sa.Column("progress", sa.Integer, nullable=False, default=0),
    sa.Column("provider", sa.String(32)),
    sa.Column("provider_task_id", sa.String(200), index=True),
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
    sa.Column("last_frame_key", sa.String(400)),
    sa.Column("filename", sa.String(200)),
    sa.Column("error", sa.JSON),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("callback_url", sa.Text),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("group_id", sa.String(40), index=True),
    sa.Column("cache_key", sa.String(64), index=True),
    sa.Column("cached_from", sa.String(40)),
    sa.Column("remixed_from", sa.String(40)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.DateTime(timezone=True), index=True),
    sa.Column("submit_started_at", sa.DateTime(timezone=True)),
    sa.Column("parent_id", sa.String(40), index=True),
    sa.Column("shot_index", sa.Integer),
    sa.Column("thumbnail_key", sa.String(400)),
    sa.Column("subtitles_key", sa.String(400)),
    sa.Column("caption", sa.JSON),
    sa.Column("queue_position", sa.Integer),
    sa.Column("generated_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("owner", "idempotency_key", name="uq_vgw_tasks_idempotency"),
)

_FIELDS = [f.name for f in dataclasses.fields(Task)]
_COLUMNS = tasks_table.c
# "Not terminal", spelled so that the status index serves it.
# Equalities rather than IN (…): an IN list is expanded again on every execution, and this
# condition guards every write.
_LIVE = sa.or_(*(_COLUMNS.status == s.value for s in TaskStatus if not s.is_terminal))
_DATETIMES = (
    "created_at",
    "updated_at",
    "finished_at",
    "lease_until",
    "submit_started_at",
    "deleted_at",
    "generated_at",
)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; everything we stored was UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def row_to_task(row: sa.Row[Any]) -> Task:
    return _task_from(dict(row._mapping))


def _task_from(data: dict[str, Any]) -> Task:
    """A task from its row's columns (``data`` is changed in place)."""
    data["status"] = TaskStatus(data["status"])
    data["stage"] = TaskStage(data["stage"]) if data["stage"] else None
    for name in _DATETIMES:
        data[name] = _utc(data[name])
    return Task(**data)


def _task_to_row(task: Task) -> dict[str, Any]:
    row = {name: getattr(task, name) for name in _FIELDS}
    row["status"] = task.status.value
    row["stage"] = task.stage.value if task.stage else None
    return row


# Every column named: a statement run on the driver's cursor is compiled without the values.
_INSERT = (
    tasks_table.insert()
    .values({column.name: sa.bindparam(column.name) for column in tasks_table.c})
    .returning(*tasks_table.c)
)


@functools.cache
def _leased_insert(dialect: str) -> sa.Insert:
    """The INSERT of a task that starts leased for ``_lease_s`` seconds on the database's
    clock (built once per dialect: building a statement costs more than running it)."""
    later = db_later(dialect, sa.bindparam("_lease_s", type_=sa.Float))
    values: dict[str, Any] = {
        column.name: later if column.name == "lease_until" else sa.bindparam(column.name)
        for column in tasks_table.c
    }
    return tasks_table.insert().values(values).returning(*tasks_table.c)


_RECORD_JOB = (
    tasks_table.update()
    .where(_COLUMNS.id == sa.bindparam("_task_id"), _COLUMNS.provider_task_id.is_(None))
    .values(
        provider_task_id=sa.bindparam("provider_task_id"), updated_at=sa.bindparam("updated_at")
    )
    .returning(*tasks_table.c)
)


@functools.cache
def _record_submitted_job(dialect: str) -> sa.Update:
    """``_RECORD_JOB``, also setting ``provider_status`` while ``:_fence`` holds the lease, and
    returning whether it does (``held``)."""
    held = sa.and_(
        _LIVE,
        _COLUMNS.lease_owner == sa.bindparam("_fence"),
        _COLUMNS.lease_until > db_now(dialect),
    )
    return (
        tasks_table.update()
        .where(_COLUMNS.id == sa.bindparam("_task_id"), _COLUMNS.provider_task_id.is_(None))
        .values(
            provider_task_id=sa.bindparam("provider_task_id"),
            updated_at=sa.bindparam("updated_at"),
            provider_status=sa.case(
                (held, sa.bindparam("provider_status")), else_=_COLUMNS.provider_status
            ),
        )
        .returning(*tasks_table.c, held.label("held"))
    )


_SELECT_BY_ID = tasks_table.select().where(_COLUMNS.id == sa.bindparam("_task_id"))
_SELECT_BY_ID_AND_OWNER = _SELECT_BY_ID.where(_COLUMNS.owner == sa.bindparam("_owner"))


@functools.lru_cache(maxsize=512)
def _guarded_update(columns: frozenset[str], dialect: str, fenced: bool) -> sa.UpdateBase:
    """``UPDATE … WHERE id = :_task_id AND not terminal [AND fenced] RETURNING *``, built once
    per set of columns (building statements costs more than running them on the hot path)."""
    conditions = [_COLUMNS.id == sa.bindparam("_task_id"), _LIVE]
    if fenced:
        conditions += [
            _COLUMNS.lease_owner == sa.bindparam("_fence"),
            _COLUMNS.lease_until > db_now(dialect),
        ]
    return (
        tasks_table.update()
        .where(*conditions)
        .values({name: sa.bindparam(name) for name in sorted(columns)})
        .returning(*tasks_table.c)
    )


class TaskStore:
    """Async facade over a synchronous SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        #: Called with a task id after a write that stored an event for it (``app.tasks.events``).
        self.on_event: Callable[[str], None] | None = None
        # SQLite has one writer at a time, and its busy handler sleeps in growing steps when
        # threads collide; taking turns in-process is much faster. Other databases need no lock.
        sqlite_lock = threading.Lock()
        self._write_lock: contextlib.AbstractContextManager[object] = (
            sqlite_lock if self.dialect == "sqlite" else contextlib.nullcontext()
        )
        self._group = GroupCommit(engine, sqlite_lock) if self.dialect == "sqlite" else None
        #: Whether writes commit in the order they are asked for (one writer, first come first
        #: served), so that a caller may ask for the next before the last is done.
        self.writes_in_order = self._group is not None

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction (serialised in-process on SQLite)."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    @classmethod
    def from_url(cls, url: str) -> TaskStore:
        """A store on ``url``; the schema must exist (``app.db.migrate.upgrade``)."""
        return cls(create_engine_for(url))

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a worker thread; a database that cannot answer is a 503."""
        try:
            return await asyncio.to_thread(fn)
        except OperationalError as exc:
            raise UnavailableError("the task store is unavailable") from exc

    async def _write(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in a write transaction, shared with writes arriving at the same time on
        SQLite (``GroupCommit``); a database that cannot answer is a 503."""
        if self._group is None:

            def apply() -> T:
                with self.write() as conn:
                    return fn(conn)

            return await self.run(apply)
        try:
            return await self._group.write(fn)
        except OperationalError as exc:
            raise UnavailableError("the task store is unavailable") from exc

    async def _changed(self, statement: sa.Executable) -> bool:
        """Run ``statement`` (an UPDATE … RETURNING) in a write; whether it changed a row."""
        return await self._write(lambda conn: conn.execute(statement).first() is not None)

    async def check(self) -> None:
        def ping() -> None:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        await self.run(ping)

    async def aclose(self) -> None:
        if self._group is not None:
            await self._group.aclose()
        await asyncio.to_thread(self.engine.dispose)

    # -- creating and reading ---------------------------------------------------------------

    async def create(self, task: Task, *, lease_s: float | None = None) -> tuple[Task, bool]:
        """Insert ``task``; with an idempotency key, return the live task for that key instead.

        With ``lease_s`` the task starts leased to ``task.lease_owner`` for that long (on the
        database's clock). Returns ``(task, created)``. The same key with a different request
        body is a conflict.
        """
        row = _task_to_row(task)
        insert = runnable(_INSERT, self.engine.dialect)
        if lease_s is not None and task.lease_owner:
            del row["lease_until"]
            row["_lease_s"] = lease_s
            insert = runnable(_leased_insert(self.dialect), self.engine.dialect)

        def insert_row(conn: sa.Connection) -> tuple[Task, bool]:
            if task.idempotency_key:
                existing = self._by_key(conn, task.owner, task.idempotency_key)
                if existing is not None:
                    if existing.created_at >= utcnow() - IDEMPOTENCY_TTL:
                        return existing, False
                    # The key's 24 h are over: free it for this new request.
                    conn.execute(
                        tasks_table.update()
                        .where(_COLUMNS.id == existing.id)
                        .values(idempotency_key=None)
                    )
            inserted = insert.first(conn, row)
            assert inserted is not None  # an INSERT … RETURNING returns its row
            stored = _task_from(inserted)
            if stored.status.is_terminal:  # a result reused from the cache
                outbox.enqueue_events(conn, stored, {"status": stored.status})
            return stored, True

        try:
            found, created = await self._write(insert_row)
        except IntegrityError:
            # Another request with the same key won the race; answer with its task.
            found = await self.run(lambda: self._by_key_tx(task.owner, task.idempotency_key))
            created = False
        if not created and found.request_hash != task.request_hash:
            raise ConflictError(
                "this Idempotency-Key was already used with a different request body"
            )
        return found, created

    def _by_key(self, conn: sa.Connection, owner: str, key: str) -> Task | None:
        row = conn.execute(
            tasks_table.select().where(_COLUMNS.owner == owner, _COLUMNS.idempotency_key == key)
        ).first()
        return row_to_task(row) if row else None

    def _by_key_tx(self, owner: str, key: str | None) -> Task:
        with self.engine.connect() as conn:
            found = self._by_key(conn, owner, key or "")
        if found is None:
            raise UnavailableError("idempotent create raced and lost its row")
        return found

    async def get(self, task_id: str, *, owner: str | None = None) -> Task | None:
        def select() -> Task | None:
            query = _SELECT_BY_ID if owner is None else _SELECT_BY_ID_AND_OWNER
            with self.engine.connect() as conn:
                row = conn.execute(query, {"_task_id": task_id, "_owner": owner}).first()
            return row_to_task(row) if row else None

        return await self.run(select)

    async def find_job(self, provider: str, provider_task_id: str) -> Task | None:
        """The task that holds a provider job, if any (reconciling: is this job ours already?)."""

        def select() -> Task | None:
            query = tasks_table.select().where(
                _COLUMNS.provider == provider, _COLUMNS.provider_task_id == provider_task_id
            )
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
            return row_to_task(row) if row else None

        return await self.run(select)

    async def list_for(
        self,
        *,
        owner: str | None,
        status: TaskStatus | None = None,
        group_id: str | None = None,
        provider: str | None = None,
        before: Task | None = None,
        limit: int = 20,
    ) -> list[Task]:
        """Newest first; ``before`` (keyset paging) starts after that task in the same order.
        ``owner=None``: every owner's tasks (admins)."""

        def select() -> list[Task]:
            # A long video's shots are reached through their parent, never listed on their own.
            query = tasks_table.select().where(
                _COLUMNS.deleted_at.is_(None), _COLUMNS.parent_id.is_(None)
            )
            if owner is not None:
                query = query.where(_COLUMNS.owner == owner)
            if status is not None:
                query = query.where(_COLUMNS.status == status.value)
            if group_id is not None:
                query = query.where(_COLUMNS.group_id == group_id)
            if provider is not None:
                query = query.where(_COLUMNS.provider == provider)
            if before is not None:
                created = _COLUMNS.created_at
                query = query.where(
                    sa.or_(
                        created < before.created_at,
                        sa.and_(created == before.created_at, _COLUMNS.id > before.id),
                    )
                )
            query = query.order_by(_COLUMNS.created_at.desc(), _COLUMNS.id).limit(limit)
            with self.engine.connect() as conn:
                return [row_to_task(row) for row in conn.execute(query)]

        return await self.run(select)

    async def count_for(
        self, owner: str, *, active: bool = False, since: dt.datetime | None = None
    ) -> int:
        """How many of ``owner``'s tasks are unfinished (``active``), or were created since
        ``since`` not counting results reused from the cache (quotas)."""
        query = (
            sa.select(sa.func.count())
            .select_from(tasks_table)
            # A long video is one task for quotas, however many shots it is made of.
            .where(_COLUMNS.owner == owner, _COLUMNS.parent_id.is_(None))
        )
        if active:
            query = query.where(_LIVE)
        if since is not None:
            query = query.where(_COLUMNS.created_at >= since, _COLUMNS.cached_from.is_(None))

        def count() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

        return await self.run(count)

    async def find_cached(self, owner: str, cache_key: str, *, since: dt.datetime) -> Task | None:
        """The newest of ``owner``'s videos made for ``cache_key`` that finished after ``since``
        (originals only: a reuse does not extend the time a video is reused for)."""
        query = (
            tasks_table.select()
            .where(
                _COLUMNS.owner == owner,
                _COLUMNS.cache_key == cache_key,
                _COLUMNS.status == TaskStatus.SUCCEEDED.value,
                _COLUMNS.video_key.is_not(None),
                _COLUMNS.cached_from.is_(None),
                _COLUMNS.deleted_at.is_(None),  # its file is gone
                _COLUMNS.finished_at >= since,
            )
            .order_by(_COLUMNS.finished_at.desc())
            .limit(1)
        )

        def select() -> Task | None:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
            return row_to_task(row) if row else None

        return await self.run(select)

    async def by_idempotency_key(self, owner: str, key: str) -> Task | None:
        """The task a create with this key made (within the key's 24 h), if any."""

        def select() -> Task | None:
            with self.engine.connect() as conn:
                return self._by_key(conn, owner, key)

        found = await self.run(select)
        if found is not None and found.created_at < utcnow() - IDEMPOTENCY_TTL:
            return None
        return found

    async def page_for(
        self, *, owner: str, after: Task | None, limit: int, ascending: bool
    ) -> list[Task]:
        """The owner's tasks (deleted ones left out) by creation time, oldest or newest first,
        starting after the task ``after``: keyset paging on ``(created_at, id)``, stable while
        new tasks arrive."""

        def select() -> list[Task]:
            c = _COLUMNS
            query = tasks_table.select().where(
                c.owner == owner, c.deleted_at.is_(None), c.parent_id.is_(None)
            )
            if after is not None:
                if ascending:
                    later = sa.and_(c.created_at == after.created_at, c.id > after.id)
                    query = query.where(sa.or_(c.created_at > after.created_at, later))
                else:
                    earlier = sa.and_(c.created_at == after.created_at, c.id < after.id)
                    query = query.where(sa.or_(c.created_at < after.created_at, earlier))
            if ascending:
                query = query.order_by(c.created_at.asc(), c.id.asc())
            else:
                query = query.order_by(c.created_at.desc(), c.id.desc())
            with self.engine.connect() as conn:
                return [row_to_task(row) for row in conn.execute(query.limit(limit))]

        return await self.run(select)

    async def children(self, parent_id: str) -> list[Task]:
        """A long video's shot tasks (every attempt), in shot order, oldest attempt first."""
        query = (
            tasks_table.select()
            .where(_COLUMNS.parent_id == parent_id)
            .order_by(_COLUMNS.shot_index, _COLUMNS.created_at, _COLUMNS.id)
        )

        def select() -> list[Task]:
            with self.engine.connect() as conn:
                return [row_to_task(row) for row in conn.execute(query)]

        return await self.run(select)

    async def create_child(
        self, task: Task, *, fence: str, lease_s: float
    ) -> tuple[Task, bool] | None:
        """Insert a long video's shot task once: ``(task, created)``, the stored row when
        its id exists already (a restarted parent asks again), or ``None`` when the parent
        (``task.parent_id``) has ended or is no longer leased to ``fence``.

        The parent's row is read ``FOR SHARE`` (PostgreSQL): a cancel of the parent waits for
        this insert, so the cancel's cascade sees every shot the parent made."""
        row = _task_to_row(task)
        row["lease_owner"] = fence
        row["lease_until"] = db_later(self.dialect, sa.literal(lease_s))
        parent = (
            sa.select(_COLUMNS.id)
            .where(
                _COLUMNS.id == task.parent_id,
                _LIVE,
                _COLUMNS.lease_owner == fence,
                _COLUMNS.lease_until > db_now(self.dialect),
            )
            .with_for_update(read=True)
        )
        insert = tasks_table.insert().values(**row).returning(*tasks_table.c)

        def apply(conn: sa.Connection) -> tuple[Task, bool] | None:
            if conn.execute(parent).first() is None:
                return None
            existing = conn.execute(_SELECT_BY_ID, {"_task_id": task.id}).first()
            if existing is not None:
                return row_to_task(existing), False
            return row_to_task(conn.execute(insert).one()), True

        return await self._write(apply)

    async def unfinished(self) -> list[Task]:
        def select() -> list[Task]:
            query = tasks_table.select().where(_LIVE).order_by(_COLUMNS.created_at)
            with self.engine.connect() as conn:
                return [row_to_task(row) for row in conn.execute(query)]

        return await self.run(select)

    async def count_unfinished(self) -> dict[str, int]:
        """Unfinished tasks by status, over every process sharing the store (for metrics)."""

        def count() -> dict[str, int]:
            query = (
                sa.select(_COLUMNS.status, sa.func.count()).where(_LIVE).group_by(_COLUMNS.status)
            )
            with self.engine.connect() as conn:
                return {str(status): int(n) for status, n in conn.execute(query)}

        return await self.run(count)

    # -- writing ------------------------------------------------------------------------------

    async def update(
        self, task_id: str, *, fence: str | None = None, **changes: Any
    ) -> Task | None:
        """Apply ``changes`` unless the task is terminal (or, with ``fence``, no longer leased
        to that owner); return the new task, or None when nothing was written."""
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

        params = {"_task_id": task_id, "_fence": fence, **values}
        statement = _guarded_update(frozenset(values), self.dialect, fence is not None)
        prepared = runnable(statement, self.engine.dialect)

        def apply(conn: sa.Connection) -> tuple[Task | None, bool]:
            found = prepared.first(conn, params)
            if found is None:
                return None, False
            task = _task_from(found)
            outbox.enqueue_events(conn, task, values)
            return task, events.record(conn, task, values)

        task, streamed = await self._write(apply)
        if streamed and self.on_event is not None:
            self.on_event(task_id)
        return task

    async def take_slot(
        self, task_id: str, changes: dict[str, Any], *, fence: str, provider: str, limit: int
    ) -> tuple[Task | None, int]:
        """Apply ``changes`` (the move into ``provider``'s slot) only while fewer than ``limit``
        of its tasks are generating and no task queued for it longer waits; else return the
        task's place in that queue (1 = next). One UPDATE, serialised per provider, so every
        replica counts the same slots: ``(task, 0)``, ``(None, position)``, or ``(None, 0)``
        when the task is no longer this process's to write."""
        values = dict(changes)
        values["status"] = TaskStatus(values["status"]).value
        if isinstance(values.get("stage"), TaskStage):
            values["stage"] = values["stage"].value
        values["updated_at"] = utcnow()
        other = tasks_table.alias("other")
        me = tasks_table.alias("me")
        mine = sa.select(me.c.created_at).where(me.c.id == task_id).scalar_subquery()
        held = (
            sa.select(sa.func.count())
            .select_from(other)
            .where(
                other.c.provider == provider,
                other.c.status == TaskStatus.RUNNING.value,
                other.c.stage == TaskStage.GENERATING.value,
            )
            .scalar_subquery()
        )
        ahead = (
            sa.select(sa.func.count())
            .select_from(other)
            .where(
                other.c.provider == provider,
                other.c.status == TaskStatus.QUEUED.value,
                other.c.id != task_id,
                sa.or_(
                    other.c.created_at < mine,
                    sa.and_(other.c.created_at == mine, other.c.id < task_id),
                ),
            )
            .scalar_subquery()
        )
        statement = (
            tasks_table.update()
            .where(
                _COLUMNS.id == task_id,
                _LIVE,
                _COLUMNS.lease_owner == fence,
                _COLUMNS.lease_until > db_now(self.dialect),
                held + ahead < limit,
            )
            .values(**values)
            .returning(*tasks_table.c)
        )
        position = sa.select(ahead + 1)

        def apply(conn: sa.Connection) -> tuple[Task | None, int, bool]:
            if self.dialect == "postgresql":
                # Serialise takers of this provider's slots (released at commit).
                key = int.from_bytes(provider.encode()[:4].ljust(4, b"\0"), "big") & 0x7FFFFFFF
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x76677701, key)))
            found = conn.execute(statement).first()
            if found is None:
                return None, int(conn.execute(position).scalar_one()), False
            task = row_to_task(found)
            outbox.enqueue_events(conn, task, values)
            return task, 0, events.record(conn, task, values)

        task, place, streamed = await self._write(apply)
        if task is None:
            current = await self.get(task_id)
            if current is None or current.status.is_terminal or current.lease_owner != fence:
                return None, 0
            return None, max(1, place)
        if streamed and self.on_event is not None:
            self.on_event(task_id)
        return task, 0

    async def hide(self, task_id: str, *, owner: str) -> bool:
        """Mark the owner's task deleted, ended or not (the row stays); False if there was no
        such task left to hide."""
        statement = (
            tasks_table.update()
            .where(_COLUMNS.id == task_id, _COLUMNS.owner == owner, _COLUMNS.deleted_at.is_(None))
            .values(deleted_at=utcnow(), updated_at=utcnow())
            .returning(_COLUMNS.id)
        )
        return await self._changed(statement)

    async def record_job(self, task_id: str, provider_task_id: str) -> Task | None:
        """Write the provider's job id unless one is already there; return the task after the
        write, or None if the task already named a (possibly different) job."""
        values = {"_task_id": task_id, "provider_task_id": provider_task_id, "updated_at": utcnow()}

        def apply(conn: sa.Connection) -> Task | None:
            row = conn.execute(_RECORD_JOB, values).first()
            return row_to_task(row) if row else None

        return await self._write(apply)

    async def record_submitted_job(
        self, task_id: str, provider_task_id: str, *, fence: str, provider_status: str
    ) -> tuple[Task | None, bool]:
        """:meth:`record_job` and, in the same write, ``provider_status`` if ``fence`` still
        holds the task's lease. Returns the task after the write (None as for ``record_job``)
        and whether the lease held: the job id is written either way, so that a job paid for
        can always be found and cancelled."""
        values = {
            "_task_id": task_id,
            "_fence": fence,
            "provider_task_id": provider_task_id,
            "provider_status": provider_status,
            "updated_at": utcnow(),
        }
        statement = runnable(_record_submitted_job(self.dialect), self.engine.dialect)

        def apply(conn: sa.Connection) -> tuple[Task | None, bool]:
            fields = statement.first(conn, values)
            if fields is None:
                return None, False
            held = bool(fields.pop("held"))
            return _task_from(fields), held

        return await self._write(apply)

    async def record_thumbnail(self, task_id: str, video_key: str, thumbnail_key: str) -> bool:
        """Record the poster made after a video was published (``app.tasks.extras``): only
        on the succeeded task whose video it is; whether it was written."""
        statement = (
            tasks_table.update()
            .where(
                _COLUMNS.id == task_id,
                _COLUMNS.status == TaskStatus.SUCCEEDED.value,
                _COLUMNS.video_key == video_key,
                _COLUMNS.deleted_at.is_(None),
            )
            .values(thumbnail_key=thumbnail_key, updated_at=utcnow())
            .returning(_COLUMNS.id)
        )
        return await self._changed(statement)

    async def note_provider_status(self, task_id: str, provider_status: str) -> None:
        """Record what the provider said, even on an ended task (e.g. the job was cancelled
        there after the task was): for operators reading the task, not a state change."""
        statement = (
            tasks_table.update()
            .where(_COLUMNS.id == task_id)
            .values(provider_status=provider_status[:64], updated_at=utcnow())
        )

        def apply(conn: sa.Connection) -> None:
            conn.execute(statement)

        await self._write(apply)

    async def claim_job_cancel(self, task_id: str, provider_task_id: str, word: str) -> bool:
        """Mark ``provider_task_id``'s cancel as sent (``provider_status = word``) unless a
        process already did: exactly one of those racing to cancel a job sends the cancel."""
        statement = (
            tasks_table.update()
            .where(
                _COLUMNS.id == task_id,
                _COLUMNS.provider_task_id == provider_task_id,
                sa.or_(_COLUMNS.provider_status.is_(None), _COLUMNS.provider_status != word),
            )
            .values(provider_status=word, updated_at=utcnow())
            .returning(_COLUMNS.id)
        )
        return await self._changed(statement)

    # -- leases (see app.tasks.leases) ------------------------------------------------------

    async def claim(
        self, owner: str, *, lease_s: float, dead_owners: Collection[str] = ()
    ) -> list[Task]:
        """Take over the unfinished tasks nobody holds: released ones (a graceful hand-over,
        not counted as an attempt), those of ``dead_owners`` and those whose lease ran out
        (a crash or a stall: counted in ``attempts``). One UPDATE: two processes never claim
        the same task, because each row's condition is re-checked as it is written."""
        released = _COLUMNS.lease_owner.is_(None)
        lost = sa.or_(
            _COLUMNS.lease_owner.in_(list(dead_owners)),
            _COLUMNS.lease_until < db_now(self.dialect),
        )
        statement = (
            tasks_table.update()
            .where(_LIVE, sa.or_(released, lost))
            .values(
                lease_owner=owner,
                lease_until=db_later(self.dialect, sa.literal(lease_s)),
                attempts=_COLUMNS.attempts + sa.case((released, 0), else_=1),
            )
            .returning(*tasks_table.c)
        )

        def apply(conn: sa.Connection) -> list[Task]:
            rows = conn.execute(statement).all()
            return sorted((row_to_task(row) for row in rows), key=lambda t: t.created_at)

        return await self._write(apply)

    async def renew(self, owner: str, task_ids: Collection[str], *, lease_s: float) -> set[str]:
        """Extend ``owner``'s live leases on ``task_ids``; return the ids it still holds (a
        lease that ran out is lost, even if nobody has claimed the task yet)."""
        if not task_ids:
            return set()
        statement = (
            tasks_table.update()
            .where(
                _COLUMNS.id.in_(list(task_ids)),
                _COLUMNS.lease_owner == owner,
                _COLUMNS.lease_until > db_now(self.dialect),
                _LIVE,
            )
            .values(lease_until=db_later(self.dialect, sa.literal(lease_s)))
            .returning(_COLUMNS.id)
        )

        def apply(conn: sa.Connection) -> set[str]:
            return {row.id for row in conn.execute(statement)}

        return await self._write(apply)

    async def release(self, owner: str, task_ids: Collection[str] | None = None) -> None:
        """Hand ``owner``'s unfinished tasks (all, or ``task_ids``) to whoever claims next."""
        conditions = [_COLUMNS.lease_owner == owner, _LIVE]
        if task_ids is not None:
            conditions.append(_COLUMNS.id.in_(list(task_ids)))
        statement = (
            tasks_table.update().where(*conditions).values(lease_owner=None, lease_until=None)
        )

        def apply(conn: sa.Connection) -> None:
            conn.execute(statement)

        await self._write(apply)

    async def lease_owners(self) -> set[str]:
        """Every process that holds a lease on an unfinished task."""
        query = sa.select(_COLUMNS.lease_owner).where(_LIVE, _COLUMNS.lease_owner.is_not(None))

        def select() -> set[str]:
            with self.engine.connect() as conn:
                return {row.lease_owner for row in conn.execute(query.distinct())}

        return await self.run(select)
