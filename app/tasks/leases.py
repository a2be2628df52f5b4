"""Task ownership: which gateway process works on which task, and how a dead one's tasks move on.

Every unfinished task row names the process working on it (``lease_owner``, the process's
instance id) and until when (``lease_until``, on the database's clock). The rules:

* **Fencing.** The pipeline writes a task only while it holds the lease (``TaskStore.update``
  with ``fence=``). A process that stalled past its lease, or lost its database connection and
  was taken over, finds its next write refused and stops — it never submits or overwrites.
* **Liveness by lock.** Each process holds an *instance lock* for its whole life: a session
  advisory lock on PostgreSQL (it goes with the connection when the process dies), an
  ``flock`` on a file beside the SQLite database (it goes with the process). Every
  ``[queue] takeover_check_s`` each process looks at the owners of unfinished tasks; an owner
  whose lock is free is dead, and its tasks are claimed at once. So a restarted gateway on
  SQLite resumes everything immediately, and a replica killed on PostgreSQL has its tasks
  continue elsewhere within a few seconds.
* **Leases as the backstop.** Leases are renewed every ``lease_s / 3``; a lease that runs out
  (a process alive but stuck) can be claimed too.
* **Attempts.** A graceful stop releases its leases (the tasks are claimed at once, and the
  hand-over is not an attempt); taking over from a dead or stuck owner counts toward
  ``[queue] max_attempts``.

Hand-written because no library does leases with fencing over a plain SQL table; the locks are
the databases' own (PostgreSQL advisory locks, POSIX ``flock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import IO, Any, Protocol

import sqlalchemy as sa

from app.db.engine import db_now, sqlite_path
from app.tasks.models import Task, TaskStatus
from app.tasks.store import TaskStore, tasks_table

logger = logging.getLogger(__name__)

# pg_advisory_lock(namespace, key): instance locks live in namespace "vgw\0".
INSTANCE_LOCK_NAMESPACE = 0x76677700


def new_instance_id() -> str:
    return uuid.uuid4().hex


class InstanceLocks(Protocol):
    """Proof of life for gateway processes sharing one store."""

    instance_id: str

    def acquire(self) -> None:
        """Take this process's lock (held until ``release``)."""
        ...

    def alive(self, owners: set[str]) -> set[str]:
        """The subset of ``owners`` whose process still holds its lock."""
        ...

    def release(self) -> None: ...


def _pg_key(instance_id: str) -> int:
    return int.from_bytes(hashlib.sha256(instance_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


class PostgresInstanceLocks:
    """Session advisory locks on a connection this process keeps open for its lifetime."""

    def __init__(self, engine: sa.Engine, instance_id: str) -> None:
        self.instance_id = instance_id
        self._engine = engine
        self._conn: sa.Connection | None = None
        self._lock = threading.Lock()  # one connection, used from worker threads

    def _connect(self) -> sa.Connection:
        conn = self._engine.connect()
        conn.execute(
            sa.text("SELECT pg_advisory_lock(:ns, :key)"),
            {"ns": INSTANCE_LOCK_NAMESPACE, "key": _pg_key(self.instance_id)},
        )
        conn.commit()  # a session lock outlives the transaction that took it
        return conn

    def acquire(self) -> None:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()

    def alive(self, owners: set[str]) -> set[str]:
        if not owners:
            return set()
        query = sa.text(
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = :ns AND objsubid = 2"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                held = {
                    int(row.objid)
                    for row in self._conn.execute(query, {"ns": INSTANCE_LOCK_NAMESPACE})
                }
                self._conn.commit()
            except sa.exc.DBAPIError:
                # Our connection (and with it our lock) is gone: others may be taking our
                # tasks over; fencing stops our stale writes. Lock again on a new connection.
                logger.warning("lost the instance lock's database connection; reconnecting")
                with contextlib.suppress(Exception):
                    if self._conn is not None:
                        self._conn.invalidate()
                        self._conn.close()
                self._conn = None
                raise
        return {owner for owner in owners if _pg_key(owner) in held}

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:ns, :key)"),
                        {"ns": INSTANCE_LOCK_NAMESPACE, "key": _pg_key(self.instance_id)},
                    )
                    self._conn.commit()
                self._conn.close()
                self._conn = None


class FileInstanceLocks:
    """``flock``-ed files in a folder beside the SQLite database (one host by definition)."""

    def __init__(self, folder: Path, instance_id: str) -> None:
        self.instance_id = instance_id
        self._folder = folder
        self._file: IO[str] | None = None

    def _path(self, instance_id: str) -> Path:
        return self._folder / f"{instance_id}.lock"

    def acquire(self) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        handle = self._path(self.instance_id).open("w")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def alive(self, owners: set[str]) -> set[str]:
        living = set()
        for owner in owners:
            if owner == self.instance_id:
                living.add(owner)
                continue
            path = self._path(owner)
            try:
                handle = path.open("r")
            except FileNotFoundError:
                continue  # never locked here, or cleaned up after it died
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    living.add(owner)
                    continue
                path.unlink(missing_ok=True)  # dead: tidy up its lock file
        return living

    def release(self) -> None:
        if self._file is not None:
            self._path(self.instance_id).unlink(missing_ok=True)
            self._file.close()  # closing drops the flock
            self._file = None


class SoleInstanceLocks:
    """An in-memory database has exactly one process: every other owner is gone."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id

    def acquire(self) -> None:
        return None

    def alive(self, owners: set[str]) -> set[str]:
        return owners & {self.instance_id}

    def release(self) -> None:
        return None


def instance_locks_for(store: TaskStore, url: str, instance_id: str) -> InstanceLocks:
    if store.dialect == "postgresql":
        return PostgresInstanceLocks(store.engine, instance_id)
    path = sqlite_path(url)
    if path is not None:
        return FileInstanceLocks(path.with_name(path.name + ".instances"), instance_id)
    return SoleInstanceLocks(instance_id)


_LIVE = tasks_table.c.status.in_([s.value for s in TaskStatus if not s.is_terminal])


class Leases:
    """This process's side of task ownership (used by the runner and the pipeline)."""

    def __init__(self, store: TaskStore, locks: InstanceLocks, *, lease_s: float = 30.0) -> None:
        self._store = store
        self._locks = locks
        self.lease_s = lease_s
        self.instance_id = locks.instance_id

    async def start(self) -> None:
        await asyncio.to_thread(self._locks.acquire)

    async def close(self) -> None:
        await asyncio.to_thread(self._locks.release)

    async def _owners(self) -> tuple[set[str], bool]:
        """The owners of unfinished tasks, and whether any task is released or out of lease."""
        first_until = sa.func.min(tasks_table.c.lease_until)
        query = (
            sa.select(
                tasks_table.c.lease_owner,
                (first_until < db_now(self._store.dialect)).label("expired"),
            )
            .where(_LIVE)
            .group_by(tasks_table.c.lease_owner)
        )

        def select() -> list[Any]:
            with self._store.engine.connect() as conn:
                return list(conn.execute(query))

        rows = await self._store.run(select)
        owners = {row.lease_owner for row in rows if row.lease_owner is not None}
        claimable = any(row.lease_owner is None or bool(row.expired) for row in rows)
        return owners, claimable

    async def dead(self, owners: set[str]) -> set[str]:
        """Which of ``owners`` (other processes' instance ids) are no longer running."""
        others = owners - {self.instance_id}
        alive = await asyncio.to_thread(self._locks.alive, others) if others else set()
        return others - alive

    async def claim(self) -> list[Task]:
        """Claim released tasks, those of dead processes and those out of lease."""
        owners, claimable = await self._owners()
        others = owners - {self.instance_id}
        alive = await asyncio.to_thread(self._locks.alive, others) if others else set()
        dead = others - alive
        if not dead and not claimable:
            return []
        if dead:
            logger.info("taking over the tasks of %d stopped process(es)", len(dead))
        return await self._store.claim(self.instance_id, lease_s=self.lease_s, dead_owners=dead)

    async def renew(self, task_ids: set[str]) -> set[str]:
        return await self._store.renew(self.instance_id, task_ids, lease_s=self.lease_s)

    async def release(self, task_ids: set[str] | None = None) -> None:
        await self._store.release(self.instance_id, task_ids)
