"""Operator statistics over every tenant's tasks (``GET /v1/admin/stats``, the console's
Operate page).

Everything is counted in the task store itself, so every replica answers alike and nothing
kept in one process's memory can drift (``/metrics`` counts what *this* process did since it
started). Three reads, each an aggregate the store's indexes serve:

* now — the queued and running tasks by provider, and how many each gateway process holds;
* a recent window (by ``created_at``) — tasks by status and provider;
* the window's failures grouped by error code, each with its latest example.

A long video's shot tasks are parts of their parent and are not counted on their own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from app.tasks.models import TaskStatus, utcnow
from app.tasks.store import TaskStore, tasks_table

_C = tasks_table.c
_LIVE_WORDS = [s.value for s in TaskStatus if not s.is_terminal]
# A long video's shots (tasks with a parent) are counted as part of it.
_TOP_LEVEL: list[sa.ColumnElement[bool]] = [_C.parent_id.is_(None)]


@dataclass
class FailureGroup:
    code: str
    count: int
    last_at: dt.datetime
    task_id: str
    message: str
    provider: str | None


@dataclass
class TaskStats:
    since: dt.datetime
    window_h: float
    #: status → count, for tasks created in the window
    by_status: dict[str, int] = field(default_factory=dict)
    #: provider → status → count, for tasks created in the window ("" = not routed yet)
    by_provider: dict[str, dict[str, int]] = field(default_factory=dict)
    queued: int = 0
    running: int = 0
    #: provider → {"queued": n, "running": n}, unfinished tasks of any age
    active_by_provider: dict[str, dict[str, int]] = field(default_factory=dict)
    #: gateway instance → unfinished tasks it holds a lease on
    by_instance: dict[str, int] = field(default_factory=dict)
    failures: list[FailureGroup] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "window_h": self.window_h,
            "total": sum(self.by_status.values()),
            "by_status": self.by_status,
            "by_provider": self.by_provider,
            "active": {
                "queued": self.queued,
                "running": self.running,
                "by_provider": self.active_by_provider,
                "by_instance": self.by_instance,
            },
            "failures": [
                {
                    "code": group.code,
                    "count": group.count,
                    "last_at": group.last_at.isoformat(),
                    "example": {
                        "task_id": group.task_id,
                        "message": group.message,
                        "provider": group.provider,
                    },
                }
                for group in self.failures
            ],
        }


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _queries(since: dt.datetime) -> tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any]]:
    count = sa.func.count().label("n")
    active = (
        sa.select(_C.provider, _C.status, _C.lease_owner, count)
        .where(_C.status.in_(_LIVE_WORDS), *_TOP_LEVEL)
        .group_by(_C.provider, _C.status, _C.lease_owner)
    )
    window = (
        sa.select(_C.provider, _C.status, count)
        .where(_C.created_at >= since, *_TOP_LEVEL)
        .group_by(_C.provider, _C.status)
    )
    # The latest failure of each code, with the code's count, in one pass (a window function:
    # SQLite ≥ 3.25 and PostgreSQL both have them).
    code = sa.func.coalesce(_C.error["code"].as_string(), "unknown")
    ranked = (
        sa.select(
            _C.id,
            _C.provider,
            _C.created_at,
            _C.finished_at,
            _C.error["message"].as_string().label("message"),
            code.label("code"),
            sa.func.row_number()
            .over(partition_by=code, order_by=(_C.created_at.desc(), _C.id))
            .label("rank"),
            sa.func.count().over(partition_by=code).label("n"),
        )
        .where(_C.status == TaskStatus.FAILED.value, _C.created_at >= since, *_TOP_LEVEL)
        .subquery()
    )
    failures = (
        sa.select(ranked)
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.n.desc(), ranked.c.created_at.desc())
    )
    return active, window, failures


async def collect(
    store: TaskStore, *, window: dt.timedelta, now: dt.datetime | None = None
) -> TaskStats:
    """The statistics for tasks created in the last ``window`` (and every unfinished one)."""
    since = (now or utcnow()) - window
    active_query, window_query, failures_query = _queries(since)
    stats = TaskStats(since=since, window_h=round(window.total_seconds() / 3600, 3))

    def read() -> tuple[list[sa.Row[Any]], ...]:
        with store.engine.connect() as conn:
            return (
                list(conn.execute(active_query)),
                list(conn.execute(window_query)),
                list(conn.execute(failures_query)),
            )

    active_rows, window_rows, failure_rows = await store.run(read)
    for row in active_rows:
        provider = stats.active_by_provider.setdefault(
            row.provider or "", {"queued": 0, "running": 0}
        )
        provider[row.status] = provider.get(row.status, 0) + row.n
        if row.status == TaskStatus.QUEUED.value:
            stats.queued += row.n
        else:
            stats.running += row.n
        if row.lease_owner:
            stats.by_instance[row.lease_owner] = stats.by_instance.get(row.lease_owner, 0) + row.n
    for row in window_rows:
        stats.by_status[row.status] = stats.by_status.get(row.status, 0) + row.n
        per = stats.by_provider.setdefault(row.provider or "", {})
        per[row.status] = per.get(row.status, 0) + row.n
    stats.failures = [
        FailureGroup(
            code=row.code,
            count=row.n,
            last_at=_utc(row.finished_at or row.created_at),
            task_id=row.id,
            message=row.message or "",
            provider=row.provider,
        )
        for row in failure_rows
    ]
    return stats
