"""Webhooks that can be trusted and are never lost: a transactional outbox.

When a task with a ``callback_url`` reaches a state its client asked to hear about
(``callback_events``: ``succeeded``, ``failed``, ``cancelled`` by default, ``progress`` on
request), :func:`enqueue_events` adds a row to ``vgw_webhook_outbox`` *in the transaction that
changes the task*. :class:`WebhookOutbox` (one per process, every replica runs one) claims due
rows and delivers them:

* signed per Standard Webhooks — ``webhook-id`` (one per event, the same on every retry),
  ``webhook-timestamp`` (the attempt's), ``webhook-signature: v1,<base64 HMAC-SHA256 of
  "id.timestamp.body">`` with ``[webhooks] secret`` (``whsec_…``) — using the
  ``standardwebhooks`` package;
* body ``{"type": "task.succeeded", "timestamp": …, "data": <the task as GET returns it>}``,
  rendered at the first attempt and stored, so every retry sends the same bytes;
* any answer but 2xx is retried with exponential back-off from 1 s (capped at an hour, with
  jitter) until the event is ``[webhooks] max_age_h`` old; then it is marked ``expired``;
* one task's events are sent in order, one at a time; progress events not yet delivered when
  the task ends are ``superseded`` (never sent), so the end event is the last a receiver gets;
* through its own HTTP client and connection limit, so slow receivers cannot starve provider
  polling; a crash between claim and delivery only delays the row until its claim runs out.

Delivery is at least once: receivers dedupe on ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import random
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import Webhook

from app.db import metadata
from app.db.engine import db_later, db_now
from app.tasks.models import Task, utcnow
from app.tls import tls_context

if TYPE_CHECKING:
    from app.config import WebhooksSettings
    from app.tasks.store import TaskStore

logger = logging.getLogger(__name__)

DEFAULT_EVENTS = ("succeeded", "failed", "cancelled")
PROGRESS = "task.progress"
EVENTS = frozenset({*DEFAULT_EVENTS, "progress"})
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 3600.0
SECRET_META_KEY = "webhooks.secret"  # noqa: S105 (the name of a row, not a secret)

outbox_table = sa.Table(
    "vgw_webhook_outbox",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("task_id", sa.String(40), nullable=False, index=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | expired
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.String(300)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Index("ix_vgw_webhook_outbox_due", "status", "next_attempt_at"),
)
_INSERT = outbox_table.insert()

meta_table = sa.Table(
    "vgw_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
_OUT = outbox_table.c


def wanted_events(request: dict[str, Any]) -> frozenset[str]:
    events = request.get("callback_events")
    return frozenset(events) if events else frozenset(DEFAULT_EVENTS)


def events_for(task: Task, changes: dict[str, Any]) -> list[str]:
    """The webhook event types a write of ``changes`` (which produced ``task``) causes."""
    if not task.callback_url:
        return []
    wanted = wanted_events(task.request)
    if "status" in changes and task.status.is_terminal:
        return [f"task.{task.status.value}"] if task.status.value in wanted else []
    if "progress" in wanted and changes.get("stage") is not None:
        return [PROGRESS]
    return []


def enqueue_events(conn: sa.Connection, task: Task, changes: dict[str, Any]) -> None:
    """Add the outbox rows ``changes`` cause, in the caller's transaction."""
    now = utcnow()
    for event in events_for(task, changes):
        conn.execute(
            _INSERT,
            {
                "id": f"msg_{uuid.uuid4().hex}",
                "task_id": task.id,
                "event": event,
                "url": task.callback_url,
                "body": None,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            },
        )


def retry_delay_s(attempts: int, rng: random.Random | None = None) -> float:
    """Back-off after ``attempts`` failed tries: 1 s, 2 s, 4 s … an hour, ±20 % jitter."""
    base = min(MAX_RETRY_S, FIRST_RETRY_S * 2.0 ** max(0, attempts - 1))
    jitter: float = (rng or random).uniform(0.8, 1.2)
    return base * jitter


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def resolve_secret(store: TaskStore, configured: str | None) -> str:
    """``[webhooks] secret``, else one generated once and kept in the database, so every
    replica signs with the same key (``python -m app webhooks secret`` prints it)."""
    if configured:
        return configured

    def get_or_create() -> str:
        select = sa.select(meta_table.c.value).where(meta_table.c.key == SECRET_META_KEY)
        with store.engine.connect() as conn:
            value = conn.execute(select).scalar()
        if value is not None:
            return str(value)
        try:
            with store.write() as conn:
                conn.execute(meta_table.insert().values(key=SECRET_META_KEY, value=new_secret()))
        except IntegrityError:
            pass  # another process made it first
        with store.engine.connect() as conn:
            return str(conn.execute(select).scalar_one())

    return await store.run(get_or_create)


Render = Callable[[Task], Awaitable[dict[str, Any]]]


class WebhookOutbox:
    """Delivers the outbox's due rows; one per process."""

    def __init__(
        self,
        store: TaskStore,
        *,
        settings: WebhooksSettings,
        secret: str,
        render: Render,
        instance_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self._store = store
        self._settings = settings
        self._signer = Webhook(secret)
        self._render = render
        self._me = instance_id
        self._poll_s = poll_s
        self._max_age = dt.timedelta(hours=settings.max_age_h)
        self._http = httpx.AsyncClient(
            transport=transport,
            verify=tls_context(),
            timeout=httpx.Timeout(settings.timeout_s, connect=min(5.0, settings.timeout_s)),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
            follow_redirects=False,
        )
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        # Built once: building them cost more than running them (a claim runs every
        # ``poll_s`` in every process, webhooks or not).
        self._supersede, self._take_due = self._claim_statements(settings.max_connections)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="webhook-outbox")

    def wake(self) -> None:
        """Look for due rows now (an event was just enqueued in this process)."""
        self._wake.set()

    async def aclose(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._sending:
            # Give deliveries under way a moment; unfinished ones stay claimed and are
            # retried (same webhook-id) once their claim runs out.
            await asyncio.wait(self._sending, timeout=2)
            for job in self._sending:
                job.cancel()
        await self._http.aclose()

    async def backlog(self) -> int:
        """Events not delivered yet (for metrics)."""
        query = sa.select(sa.func.count()).where(_OUT.status == "pending")

        def count() -> int:
            with self._store.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

        return await self._store.run(count)

    async def _run(self) -> None:
        while True:
            try:
                claimed = await self._claim()
            except Exception:
                logger.exception("claiming webhook deliveries failed")
                claimed = []
            for row in claimed:
                job = asyncio.create_task(self._deliver(row))
                self._sending.add(job)
                job.add_done_callback(self._sending.discard)
            if len(claimed) >= self._settings.max_connections:
                await asyncio.sleep(0)  # more may be due; go round again
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()

    async def _claim(self) -> list[sa.Row[Any]]:
        def apply() -> list[sa.Row[Any]]:
            with self._store.write() as conn:
                conn.execute(self._supersede)
                return list(conn.execute(self._take_due).all())

        return await self._store.run(apply)

    def _claim_statements(self, limit: int) -> tuple[sa.Update, sa.Update]:
        """A claim's two statements: mark superseded progress rows, then take up to ``limit``
        due rows."""
        dialect = self._store.dialect
        free = sa.or_(_OUT.lease_until.is_(None), _OUT.lease_until < db_now(dialect))
        # One task's events go out in order: a row waits while an earlier one of its task is
        # undelivered. Progress is moot once the task ended: its undelivered progress events
        # are superseded by the end event, which then never waits behind them.
        earlier = outbox_table.alias("earlier")
        first_of_its_task = ~sa.exists().where(
            earlier.c.task_id == _OUT.task_id,
            earlier.c.status == "pending",
            sa.or_(
                earlier.c.created_at < _OUT.created_at,
                sa.and_(earlier.c.created_at == _OUT.created_at, earlier.c.id < _OUT.id),
            ),
        )
        ended = outbox_table.alias("ended")
        supersede = (
            outbox_table.update()
            .where(
                _OUT.status == "pending",
                _OUT.event == PROGRESS,
                free,
                sa.exists().where(ended.c.task_id == _OUT.task_id, ended.c.event != PROGRESS),
            )
            .values(status="superseded")
        )
        due = (
            sa.select(_OUT.id)
            .where(
                _OUT.status == "pending",
                _OUT.next_attempt_at <= db_now(dialect),
                free,
                first_of_its_task,
            )
            .order_by(_OUT.next_attempt_at)
            .limit(limit)
        )
        # Room for the whole delivery and its timeout before another process may retry it.
        hold_s = self._settings.timeout_s * 2 + 5
        statement = (
            outbox_table.update()
            .where(_OUT.id.in_(due.scalar_subquery()), _OUT.status == "pending", free)
            .values(lease_owner=self._me, lease_until=db_later(dialect, sa.literal(hold_s)))
            .returning(*outbox_table.c)
        )

        return supersede, statement

    async def _body(self, row: sa.Row[Any]) -> str | None:
        """The stored body, or render and store it (first attempt); None if the task is gone."""
        if row.body is not None:
            return str(row.body)
        task = await self._store.get(row.task_id)
        if task is None:
            return None
        created = (
            row.created_at.replace(tzinfo=dt.UTC)
            if row.created_at.tzinfo is None
            else (row.created_at)
        )
        body = json.dumps(
            {"type": row.event, "timestamp": created.isoformat(), "data": await self._render(task)},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        keep = outbox_table.update().where(_OUT.id == row.id, _OUT.body.is_(None)).values(body=body)
        reread = sa.select(_OUT.body).where(_OUT.id == row.id)

        def store_body() -> str:
            with self._store.write() as conn:
                conn.execute(keep)
                return str(conn.execute(reread).scalar_one())

        return await self._store.run(store_body)

    async def _deliver(self, row: sa.Row[Any]) -> None:
        async with self._slots:
            try:
                body = await self._body(row)
                if body is None:
                    await self._finish(row, "expired", error="the task no longer exists")
                    return
                now = dt.datetime.now(dt.UTC)
                headers = {
                    "content-type": "application/json",
                    "webhook-id": row.id,
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": self._signer.sign(row.id, now, body),
                }
                response = await self._http.post(row.url, content=body.encode(), headers=headers)
                if response.is_success:
                    await self._finish(row, "delivered")
                    return
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bad row must not stop the others
                logger.exception("webhook %s for task %s broke", row.id, row.task_id)
                error = type(exc).__name__
            await self._retry_later(row, error)

    async def _finish(self, row: sa.Row[Any], status: str, *, error: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "lease_owner": None, "lease_until": None}
        if status == "delivered":
            values["delivered_at"] = utcnow()
        if error:
            values["last_error"] = error[:300]
        await self._write(row.id, values)
        log = logger.info if status == "delivered" else logger.warning
        log(
            "webhook %s (%s) for task %s %s after %d attempt(s)",
            row.id,
            row.event,
            row.task_id,
            status,
            row.attempts + 1,
            extra={"task_id": row.task_id},
        )

    async def _retry_later(self, row: sa.Row[Any], error: str) -> None:
        attempts = row.attempts + 1
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.UTC)
        next_at = utcnow() + dt.timedelta(seconds=retry_delay_s(attempts))
        if next_at - created > self._max_age:
            await self._write(row.id, {"attempts": attempts})
            await self._finish(row, "expired", error=f"gave up: {error}")
            return
        await self._write(
            row.id,
            {
                "attempts": attempts,
                "next_attempt_at": next_at,
                "last_error": error[:300],
                "lease_owner": None,
                "lease_until": None,
            },
        )
        logger.info(
            "webhook %s for task %s failed (%s); attempt %d, next in %.0f s",
            row.id,
            row.task_id,
            error,
            attempts,
            (next_at - utcnow()).total_seconds(),
            extra={"task_id": row.task_id},
        )

    async def _write(self, row_id: str, values: dict[str, Any]) -> None:
        statement = outbox_table.update().where(_OUT.id == row_id).values(**values)

        def apply() -> None:
            with self._store.write() as conn:
                conn.execute(statement)

        await self._store.run(apply)
