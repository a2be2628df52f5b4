"""Group commit on SQLite: writes that arrive together share a transaction, each is answered
after its commit, and one write's error stays its own. Transactions run on the loop, except
when that would make it wait (another writer holds a lock) or checkpoint the log."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.db.engine import create_engine_for
from app.db.group_commit import MAX_BATCH, GroupCommit

pytestmark = pytest.mark.anyio


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'g.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    return engine


def insert(k: int, v: str = "x") -> Callable[[sa.Connection], int]:
    def write(conn: sa.Connection) -> int:
        conn.execute(sa.text("INSERT INTO t (k, v) VALUES (:k, :v)"), {"k": k, "v": v})
        return k

    return write


def stored(engine: sa.Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {k: v for k, v in conn.execute(sa.text("SELECT k, v FROM t"))}


async def test_writes_arriving_together_share_transactions_and_are_answered_committed(
    engine: sa.Engine,
) -> None:
    commits = 0

    @sa.event.listens_for(engine, "commit")
    def count(_: object) -> None:
        nonlocal commits
        commits += 1

    group = GroupCommit(engine, threading.Lock())
    seen_committed: list[bool] = []

    async def write_and_check(k: int) -> None:
        assert await group.write(insert(k)) == k
        seen_committed.append(k in stored(engine))  # another connection sees it

    await asyncio.gather(*(write_and_check(k) for k in range(200)))
    await group.aclose()
    assert seen_committed == [True] * 200
    assert set(stored(engine)) == set(range(200))
    assert 1 <= commits < 50  # the first alone, then the crowd in a few batches


async def test_a_failing_write_fails_alone(engine: sa.Engine) -> None:
    group = GroupCommit(engine, threading.Lock())

    def refuse(conn: sa.Connection) -> None:
        conn.execute(sa.text("INSERT INTO t (k, v) VALUES (1000, 'refused')"))
        raise ValueError("not this one")

    writes: list[Callable[[sa.Connection], Any]] = [insert(k) for k in range(10)]
    writes += [insert(3, "duplicate"), refuse]
    outcomes = await asyncio.gather(*(group.write(w) for w in writes), return_exceptions=True)
    await group.aclose()
    assert outcomes[:10] == list(range(10))
    assert isinstance(outcomes[10], sa.exc.IntegrityError)
    assert isinstance(outcomes[11], ValueError)
    assert stored(engine) == {k: "x" for k in range(10)}  # neither the duplicate nor 1000


def names_of_threads(engine: sa.Engine) -> list[str]:
    """The thread each transaction committed on, as it happens."""
    names: list[str] = []

    @sa.event.listens_for(engine, "commit")
    def note(_: object) -> None:
        names.append(threading.current_thread().name)

    return names


async def ticking(stop: asyncio.Event) -> int:
    ticks = 0
    while not stop.is_set():
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


async def test_writes_commit_on_the_loop_while_nothing_else_writes(engine: sa.Engine) -> None:
    threads = names_of_threads(engine)
    group = GroupCommit(engine, threading.Lock())
    await asyncio.gather(*(group.write(insert(k)) for k in range(50)))
    await group.aclose()
    assert threads and set(threads) == {threading.current_thread().name}


async def test_a_database_another_process_is_writing_never_blocks_the_loop(
    tmp_path: Path,
) -> None:
    """Another connection (another process, say) holds SQLite's write lock for half a second:
    the write waits for it in the writer thread, and the loop goes on meanwhile."""
    engine = create_engine_for(f"sqlite:///{tmp_path / 'busy.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    threads = names_of_threads(engine)
    group = GroupCommit(engine, threading.Lock())
    await group.write(insert(0))  # the loop's connection exists, and is idle

    other = sqlite3.connect(tmp_path / "busy.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the write lock, held
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    stop = asyncio.Event()
    ticker = asyncio.create_task(ticking(stop))
    started = time.monotonic()
    assert await group.write(insert(1)) == 1
    waited = time.monotonic() - started
    stop.set()
    ticks = await ticker
    await group.aclose()
    other.close()
    assert waited >= 0.4  # it did wait for the lock...
    assert ticks >= 10  # ...while the loop kept running (a blocked loop ticks once or not)
    assert threads[-1].startswith("sqlite-writer")
    assert set(stored(engine)) == {0, 1}


async def test_a_write_in_a_thread_holding_the_store_lock_does_not_block_the_loop(
    engine: sa.Engine,
) -> None:
    lock = threading.Lock()
    group = GroupCommit(engine, lock)
    lock.acquire()
    threading.Timer(0.3, lock.release).start()
    stop = asyncio.Event()
    ticker = asyncio.create_task(ticking(stop))
    assert await group.write(insert(7)) == 7
    stop.set()
    assert await ticker >= 10
    await group.aclose()
    assert stored(engine) == {7: "x"}


async def test_the_write_ahead_log_is_checkpointed_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's connection never checkpoints (that would fsync on the loop); the writer
    thread does, so the log stays small however much is written."""
    monkeypatch.setattr("app.db.group_commit.CHECKPOINT_EVERY", 50)
    engine = create_engine_for(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    checkpoints: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def note(_c: object, _cur: object, statement: str, *_: object) -> None:
        if "wal_checkpoint" in statement:
            checkpoints.append(threading.current_thread().name)

    group = GroupCommit(engine, threading.Lock())
    for start in range(0, 4000, 100):  # bursts of writes, with a moment between them
        await asyncio.gather(
            *(group.write(insert(k, "v" * 1000)) for k in range(start, start + 100))
        )
        await asyncio.sleep(0.02)
    await group.aclose()
    assert checkpoints and all(name.startswith("sqlite-writer") for name in checkpoints)
    # 4 MB went through the log; without checkpoints it would hold all of it.
    assert (tmp_path / "wal.db-wal").stat().st_size < 1_500_000
    assert len(stored(engine)) == 4000


async def test_a_crowd_is_committed_in_bounded_transactions(engine: sa.Engine) -> None:
    """600 writes at once: no transaction holds more than ``MAX_BATCH`` of them (on the loop,
    a transaction is time nothing else runs), and every write is answered committed."""
    sizes: list[int] = []
    statements = 0

    @sa.event.listens_for(engine, "before_cursor_execute")
    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    @sa.event.listens_for(engine, "commit")
    def note(_: object) -> None:
        nonlocal statements
        sizes.append(statements)
        statements = 0

    group = GroupCommit(engine, threading.Lock())
    assert await asyncio.gather(*(group.write(insert(k)) for k in range(600))) == list(range(600))
    await group.aclose()
    assert sum(sizes) >= 600 and max(sizes) <= MAX_BATCH
    assert set(stored(engine)) == set(range(600))
