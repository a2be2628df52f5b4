"""Group commit on SQLite: writes that arrive together share a transaction, each is answered
after its commit, and one write's error stays its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.db.group_commit import GroupCommit

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
