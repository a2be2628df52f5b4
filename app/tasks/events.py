"""Task events: what ``GET /v1/tasks/{id}/events`` (SSE) and ``WS /v1/tasks/{id}/ws`` stream.

Every state change the pipeline (or a cancel) writes through ``TaskStore.update`` adds a row to
``vgw_task_events`` *in the same transaction* (:func:`record`), so the stream can never miss or
reorder a change, and its ids (increasing per database) are the SSE event ids: a client that
reconnects with ``Last-Event-ID: N`` is replayed every event after ``N``. Types:

* ``status`` — the status or the stage changed (or the provider, on a fallback);
* ``progress`` — the progress the provider reports, or the place in a provider's queue, changed
  (estimated progress, which moves with the clock, is sent as ``progress`` events *without* an
  id while a stream is open: they are not stored, and never advance a client's resume point);
* ``succeeded`` | ``failed`` | ``cancelled`` — the terminal event; the stream ends after it.

The data of each event is the task object as ``GET /v1/tasks/{id}`` shows it, with the fields
that change (status, stage, progress, …) as they were when the event happened.

Streams work through any replica: a process that stores an event wakes its own streams at once;
on PostgreSQL the same transaction sends ``NOTIFY vgw_task_events, '<task id>'``, which every
replica ``LISTEN``\\s to (:class:`TaskEvents`); and each open stream re-reads the table every
``RECHECK_S`` anyway (SQLite files shared by processes on one host, a listener reconnecting).
Events of tasks that ended more than ``KEEP_H`` hours ago are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from app.db import metadata
from app.db.prepared import runnable
from app.tasks.models import Task, TaskStatus, utcnow

if TYPE_CHECKING:
    from app.tasks.store import TaskStore

logger = logging.getLogger(__name__)

CHANNEL = "vgw_task_events"
#: "Look at this task's job now", for the replica working on it (a provider callback arrived
#: at another one).
NUDGE_CHANNEL = "vgw_task_nudges"
RECHECK_S = 2.0
KEEP_H = 24.0
PRUNE_EVERY_S = 600.0
TERMINAL_TYPES = frozenset(s.value for s in TaskStatus if s.is_terminal)
#: The task fields an event keeps as they were (the rest are read when the event is sent).
SNAPSHOT = (
    "status",
    "stage",
    "progress",
    "provider",
    "provider_task_id",
    "provider_status",
    "queue_position",
    "error",
)
# The provider's own word alone (Ark's queued → running, "submitted") is no event: it shows
# in the next event's data, and every event is a write on every task's path.
_STATUS_FIELDS = frozenset({"status", "stage", "provider"})
_PROGRESS_FIELDS = frozenset({"progress", "queue_position"})

events_table = sa.Table(
    "vgw_task_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("task_id", sa.String(40), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Index("ix_vgw_task_events_task_id", "task_id", "id"),
)
_EV = events_table.c
# Built once: on the write path of every task change.
_INSERT = events_table.insert().values(
    {name: sa.bindparam(name) for name in ("task_id", "type", "data", "created_at")}
)
_NOTIFY = sa.select(sa.func.pg_notify(CHANNEL, sa.bindparam("task_id")))


def event_type(task: Task, changes: dict[str, Any]) -> str | None:
    """The event a write of ``changes`` (which produced ``task``) causes, if any."""
    if "status" in changes and task.status.is_terminal:
        return task.status.value
    if _STATUS_FIELDS & changes.keys():
        return "status"
    if _PROGRESS_FIELDS & changes.keys():
        return "progress"
    return None


def snapshot(task: Task) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in SNAPSHOT:
        value = getattr(task, name)
        data[name] = value.value if hasattr(value, "value") else value
    data["updated_at"] = task.updated_at.isoformat()
    return data


def record(conn: sa.Connection, task: Task, changes: dict[str, Any]) -> bool:
    """Add the event ``changes`` cause, in the caller's transaction; True if there was one."""
    kind = event_type(task, changes)
    if kind is None:
        return False
    row = {"task_id": task.id, "type": kind, "data": snapshot(task), "created_at": utcnow()}
    runnable(_INSERT, conn.dialect).first(conn, row)  # on SQLite's cursor: app.db.prepared
    if conn.dialect.name == "postgresql":
        # Delivered to every LISTENing replica when (and only if) this transaction commits.
        conn.execute(_NOTIFY, {"task_id": task.id})
    return True


@dataclass(frozen=True)
class Event:
    type: str
    id: int | None
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES


def apply_snapshot(current: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The task object (as presented now) with an event's fields as they were then."""
    merged = {**current, **data}
    if data.get("status") != TaskStatus.SUCCEEDED.value:
        for name in ("video_url", "expires_at", "filename"):
            if name in merged:
                merged[name] = None
    if data.get("status") != current.get("status"):
        merged["eta_s"] = None
        merged["progress_estimated"] = False
    return merged


Present = Callable[[Task], Awaitable[dict[str, Any]]]


class _Subscription:
    def __init__(self) -> None:
        self.event = asyncio.Event()


class TaskEvents:
    """This process's side of the event streams: wakes, the PostgreSQL listener, pruning."""

    def __init__(self, store: TaskStore, *, recheck_s: float = RECHECK_S) -> None:
        self._store = store
        self._recheck_s = recheck_s
        self._subscribers: dict[str, set[_Subscription]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Called with a task id when another replica asks this one to look at its job.
        self.on_nudge: Callable[[str], None] | None = None
        store.on_event = self.wake

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._store.dialect == "postgresql":
            self._tasks.append(asyncio.create_task(self._listen(), name="task-events-listen"))
        self._tasks.append(asyncio.create_task(self._prune(), name="task-events-prune"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def nudge_elsewhere(self, task_id: str) -> None:
        """Ask whichever replica works on the task to look at its job now (PostgreSQL only:
        a database file shared by processes on one host relies on their polling)."""
        if self._store.dialect != "postgresql":
            return
        statement = sa.select(sa.func.pg_notify(NUDGE_CHANNEL, task_id))

        def send() -> None:
            with self._store.engine.begin() as conn:
                conn.execute(statement)

        await self._store.run(send)

    def wake(self, task_id: str) -> None:
        for subscription in self._subscribers.get(task_id, ()):
            subscription.event.set()

    @property
    def streams(self) -> int:
        return sum(len(subs) for subs in self._subscribers.values())

    # -- reading ----------------------------------------------------------------------------

    async def after(self, task_id: str, last_id: int) -> list[Event]:
        query = (
            sa.select(_EV.id, _EV.type, _EV.data)
            .where(_EV.task_id == task_id, _EV.id > last_id)
            .order_by(_EV.id)
            .limit(500)
        )

        def select() -> list[Event]:
            with self._store.engine.connect() as conn:
                return [Event(row.type, int(row.id), dict(row.data)) for row in conn.execute(query)]

        return await self._store.run(select)

    async def latest_id(self, task_id: str) -> int:
        query = sa.select(sa.func.max(_EV.id)).where(_EV.task_id == task_id)

        def select() -> int:
            with self._store.engine.connect() as conn:
                return int(conn.execute(query).scalar() or 0)

        return await self._store.run(select)

    async def follow(
        self,
        task_id: str,
        *,
        after: int | None,
        load: Callable[[], Awaitable[Task]],
        present: Present,
    ) -> AsyncIterator[Event]:
        """The task's events after ``after`` (None: its current state first), live, ending
        with the terminal event."""
        subscription = _Subscription()
        self._subscribers.setdefault(task_id, set()).add(subscription)
        try:
            if after is None:
                after = await self.latest_id(task_id)
                task = await load()
                kind = task.status.value if task.status.is_terminal else "status"
                yield Event(kind, after, await present(task))
                if task.status.is_terminal:
                    return
            while True:
                subscription.event.clear()
                events = await self.after(task_id, after)
                if events:
                    current = await present(await load())
                    for event in events:
                        after = event.id or after
                        data = current if event.terminal else apply_snapshot(current, event.data)
                        yield Event(event.type, event.id, data)
                        if event.terminal:
                            return
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._recheck_s):
                        await subscription.event.wait()
                    continue
                # Quiet for a while: a task that ended without an event here (its events
                # were pruned), or estimated progress that moved with the clock.
                task = await load()
                if task.status.is_terminal:
                    if not await self.after(task_id, after):
                        yield Event(task.status.value, after, await present(task))
                        return
                    continue
                data = await present(task)
                if data.get("progress_estimated"):
                    yield Event("progress", None, data)
        finally:
            subscribers = self._subscribers.get(task_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[task_id]

    # -- background ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN on PostgreSQL; every notification wakes this process's streams of that task."""
        import psycopg

        url = self._store.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        delay = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {NUDGE_CHANNEL}")
                    delay = 1.0
                    async for notice in conn.notifies():
                        if notice.channel == NUDGE_CHANNEL:
                            if self.on_nudge is not None:
                                self.on_nudge(notice.payload)
                        else:
                            self.wake(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # streams re-check the table meanwhile
                logger.warning("task event listener lost its connection (%s)", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)

    async def _prune(self) -> None:
        while True:
            try:
                await self.prune(older_than=dt.timedelta(hours=KEEP_H))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("pruning task events failed")
            await asyncio.sleep(PRUNE_EVERY_S)

    async def prune(self, *, older_than: dt.timedelta) -> int:
        cutoff = utcnow() - older_than
        statement = events_table.delete().where(_EV.created_at < cutoff)

        def apply() -> int:
            with self._store.write() as conn:
                return int(conn.execute(statement).rowcount or 0)

        return await self._store.run(apply)
