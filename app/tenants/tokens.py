"""Managed tokens: one row per tenant in ``vgw_tokens``, shared by every replica.

A token is ``vgw_`` + 43 random URL-safe characters (256 bits), shown once when it is made.
Only ``HMAC-SHA256(token_hash_key, token)`` is stored. A fast keyed hash is enough here — and a
slow password hash (bcrypt, argon2) would be wrong: those slow down guessing of *low-entropy*
secrets, but nobody can enumerate 2**256 random tokens at any speed, while a slow hash would
cost every request tens of milliseconds of CPU. The hash must also be deterministic (no
per-row salt) so that a request's token is found by an indexed equality lookup. The key
(``[auth] token_hash_key``, optional) means a copy of the database alone does not even let an
attacker check guesses.

A tenant keeps its id (``tenant_id``, the tasks' ``owner``) for life; ``rotate`` replaces the
token and keeps the previous one valid until a grace deadline, so clients can be switched over
without downtime and without losing their tasks. ``revoke`` ends both at once; a revoked
tenant can be given a new token with ``rotate`` (its tasks stay its own).

::

    TokenService (CLI: python -m app tokens …, HTTP: /v1/admin/tokens)
        └── TokenStore (SQLAlchemy Core, calls in a worker thread)
              └── vgw_tokens
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from app.db import metadata
from app.db.engine import create_engine_for
from app.errors import ConflictError, NotFoundError, UnavailableError, ValidationError
from app.tasks.models import utcnow
from app.tenants.principal import Principal, TokenLimits

T = TypeVar("T")

TOKEN_PREFIX = "vgw_"  # noqa: S105 - a prefix, not a secret
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
#: The HMAC key when ``[auth] token_hash_key`` is unset (domain separation only).
DEFAULT_HASH_KEY = b"dify-video-gateway/token/v1"
_TIMESTAMP = sa.DateTime(timezone=True)

tokens_table = sa.Table(
    "vgw_tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(16), nullable=False),
    sa.Column("previous_hash", sa.String(64), index=True),
    sa.Column("previous_until", sa.DateTime(timezone=True)),
    sa.Column("admin", sa.Boolean, nullable=False, default=False),
    sa.Column("requests_per_s", sa.Float),
    sa.Column("burst", sa.Integer),
    sa.Column("max_active_tasks", sa.Integer),
    sa.Column("tasks_per_day", sa.Integer),
    sa.Column("providers", sa.JSON),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rotated_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # SQLite hands back naive datetimes
    return value


class TokenHasher:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or DEFAULT_HASH_KEY

    def __call__(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    """A managed token as stored (never the token itself)."""

    id: str
    name: str
    tenant_id: str
    hint: str
    admin: bool
    limits: TokenLimits
    providers: tuple[str, ...] | None
    created_at: dt.datetime
    rotated_at: dt.datetime | None = None
    previous_until: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self, defaults: TokenLimits) -> Principal:
        return Principal(
            owner=self.tenant_id,
            name=self.name,
            admin=self.admin,
            limits=self.limits.over(defaults),
            providers=frozenset(self.providers) if self.providers is not None else None,
            token_id=self.id,
        )

    def public(self) -> dict[str, Any]:
        """What ``tokens list`` and the admin API show: never the token or its hash."""

        def when(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        previous = self.previous_until if self.previous_until and self.active else None
        return {
            "name": self.name,
            "tenant_id": self.tenant_id,
            "hint": self.hint + "…",
            "admin": self.admin,
            "status": "active" if self.active else "revoked",
            "requests_per_s": self.limits.requests_per_s,
            "burst": self.limits.burst,
            "max_active_tasks": self.limits.max_active_tasks,
            "tasks_per_day": self.limits.tasks_per_day,
            "providers": list(self.providers) if self.providers is not None else None,
            "created_at": when(self.created_at),
            "rotated_at": when(self.rotated_at),
            "previous_valid_until": when(previous),
            "revoked_at": when(self.revoked_at),
            "last_used_at": when(self.last_used_at),
        }


def _row_to_record(row: sa.Row[Any]) -> TokenRecord:
    data = row._mapping
    providers = data["providers"]
    return TokenRecord(
        id=data["id"],
        name=data["name"],
        tenant_id=data["tenant_id"],
        hint=data["hint"],
        admin=bool(data["admin"]),
        limits=TokenLimits(
            requests_per_s=data["requests_per_s"],
            burst=data["burst"],
            max_active_tasks=data["max_active_tasks"],
            tasks_per_day=data["tasks_per_day"],
        ),
        providers=tuple(providers) if providers is not None else None,
        created_at=_utc(data["created_at"]) or utcnow(),
        rotated_at=_utc(data["rotated_at"]),
        previous_until=_utc(data["previous_until"]),
        revoked_at=_utc(data["revoked_at"]),
        last_used_at=_utc(data["last_used_at"]),
    )


class TokenStore:
    """``vgw_tokens`` behind async methods (the engine is synchronous: calls run in a thread)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def from_url(cls, url: str) -> TokenStore:
        """A store on ``url``; the schema must exist (``app.db.migrate.upgrade``)."""
        return cls(create_engine_for(url))

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except OperationalError as exc:
            raise UnavailableError("the token store is unavailable") from exc

    async def aclose(self) -> None:
        await asyncio.to_thread(self._engine.dispose)

    async def by_hash(self, token_hash: str, *, now: dt.datetime) -> TokenRecord | None:
        """The live token with this hash, or whose previous token it is (within its grace)."""
        t = tokens_table.c
        query = tokens_table.select().where(
            t.revoked_at.is_(None),
            sa.or_(
                t.token_hash == token_hash,
                sa.and_(t.previous_hash == token_hash, t.previous_until > now),
            ),
        )

        def select() -> TokenRecord | None:
            with self._engine.connect() as conn:
                row = conn.execute(query).first()
            return _row_to_record(row) if row else None

        return await self._run(select)

    async def by_tenant(self, tenant_id: str) -> TokenRecord | None:
        query = tokens_table.select().where(tokens_table.c.tenant_id == tenant_id)

        def select() -> TokenRecord | None:
            with self._engine.connect() as conn:
                row = conn.execute(query).first()
            return _row_to_record(row) if row else None

        return await self._run(select)

    async def by_name(self, name: str) -> TokenRecord | None:
        def select() -> TokenRecord | None:
            with self._engine.connect() as conn:
                row = conn.execute(tokens_table.select().where(tokens_table.c.name == name)).first()
            return _row_to_record(row) if row else None

        return await self._run(select)

    async def listing(self) -> list[TokenRecord]:
        def select() -> list[TokenRecord]:
            with self._engine.connect() as conn:
                rows = conn.execute(tokens_table.select().order_by(tokens_table.c.name))
                return [_row_to_record(row) for row in rows]

        return await self._run(select)

    async def insert(self, values: dict[str, Any]) -> None:
        def insert() -> None:
            with self._engine.begin() as conn:
                conn.execute(tokens_table.insert().values(**values))

        try:
            await self._run(insert)
        except IntegrityError as exc:
            raise ConflictError(f"a token named {values['name']!r} already exists") from exc

    async def change(self, name: str, values: dict[str, Any]) -> TokenRecord:
        def update() -> TokenRecord | None:
            with self._engine.begin() as conn:
                row = conn.execute(
                    tokens_table.update()
                    .where(tokens_table.c.name == name)
                    .values(**values)
                    .returning(*tokens_table.c)
                ).first()
            return _row_to_record(row) if row else None

        record = await self._run(update)
        if record is None:
            raise NotFoundError(f"no token named {name!r}")
        return record

    async def touch(self, token_ids: Iterable[str], when: dt.datetime) -> None:
        """Record use (``last_used_at``); callers batch and throttle this."""
        ids = list(token_ids)
        if not ids:
            return

        def update() -> None:
            with self._engine.begin() as conn:
                conn.execute(
                    tokens_table.update()
                    .where(tokens_table.c.id.in_(ids))
                    .values(last_used_at=when)
                )

        await self._run(update)


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValidationError(
            "a token name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def _check_providers(providers: Iterable[str] | None) -> list[str] | None:
    if providers is None:
        return None
    names = list(dict.fromkeys(p.strip().lower() for p in providers if p.strip()))
    for name in names:
        if not _PROVIDER.match(name):
            raise ValidationError(f"not a provider name: {name!r}")
    if not names:
        raise ValidationError("providers must name at least one provider (omit it for all)")
    return names


def _limit_values(limits: TokenLimits) -> dict[str, Any]:
    values = {
        "requests_per_s": limits.requests_per_s,
        "burst": limits.burst,
        "max_active_tasks": limits.max_active_tasks,
        "tasks_per_day": limits.tasks_per_day,
    }
    for key, value in values.items():
        if value is not None and value < 0:
            raise ValidationError(f"{key} must be 0 (off) or more")
    return values


class TaskCounts(Protocol):
    async def count_for(
        self, owner: str, *, active: bool = False, since: dt.datetime | None = None
    ) -> int: ...


class TokenService:
    """Create, list, rotate, revoke and change managed tokens (the CLI and the admin API)."""

    def __init__(
        self, store: TokenStore, hasher: TokenHasher, *, counts: TaskCounts | None = None
    ) -> None:
        self.store = store
        self._hash = hasher
        self._counts = counts

    async def usage(self, record: TokenRecord) -> dict[str, int] | None:
        """Queued + running tasks and tasks created today (UTC, cache hits not counted)."""
        return await self.usage_of(record.tenant_id)

    async def usage_of(self, tenant_id: str) -> dict[str, int] | None:
        """:meth:`usage` by tenant id (also for ``[auth] valid_tokens``, which have no record)."""
        if self._counts is None:
            return None
        today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        return {
            "active_tasks": await self._counts.count_for(tenant_id, active=True),
            "tasks_today": await self._counts.count_for(tenant_id, since=today),
        }

    async def create(
        self,
        name: str,
        *,
        admin: bool = False,
        limits: TokenLimits | None = None,
        providers: Iterable[str] | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new tenant and its token; the token is returned here and never again."""
        token = new_token()
        now = utcnow()
        await self.store.insert(
            {
                "id": f"tk_{uuid.uuid4().hex}",
                "name": _check_name(name),
                "tenant_id": f"tn_{uuid.uuid4().hex}",
                "token_hash": self._hash(token),
                "hint": token[: len(TOKEN_PREFIX) + 4],
                "admin": admin,
                "providers": _check_providers(providers),
                "created_at": now,
                **_limit_values(limits or TokenLimits()),
            }
        )
        record = await self.get(name)
        return record, token

    async def get(self, name: str) -> TokenRecord:
        record = await self.store.by_name(name)
        if record is None:
            raise NotFoundError(f"no token named {name!r}")
        return record

    async def listing(self) -> list[TokenRecord]:
        return await self.store.listing()

    async def rotate(self, name: str, *, grace_s: float = 0) -> tuple[TokenRecord, str]:
        """A new token for the tenant; the current one keeps working for ``grace_s`` seconds.

        Rotating a revoked tenant gives it a token again (no grace for the revoked one).
        """
        if grace_s < 0:
            raise ValidationError("the grace period cannot be negative")
        token = new_token()
        now = utcnow()
        t = tokens_table.c
        live = t.revoked_at.is_(None)
        keep = grace_s > 0
        # One statement: the current hash becomes the previous one (SQL reads the old values on
        # the right-hand side), so two rotations racing cannot lose a token.
        record = await self.store.change(
            name,
            {
                "previous_hash": sa.case((live, t.token_hash), else_=None) if keep else None,
                "previous_until": (
                    sa.case(
                        (live, sa.literal(now + dt.timedelta(seconds=grace_s), _TIMESTAMP)),
                        else_=None,
                    )
                    if keep
                    else None
                ),
                "token_hash": self._hash(token),
                "hint": token[: len(TOKEN_PREFIX) + 4],
                "rotated_at": now,
                "revoked_at": None,
            },
        )
        return record, token

    async def revoke(self, name: str) -> TokenRecord:
        """Both the current and any previous token stop working (within ``[auth] cache_s``)."""
        return await self.store.change(
            name, {"revoked_at": utcnow(), "previous_hash": None, "previous_until": None}
        )

    async def update(
        self,
        name: str,
        *,
        limits: dict[str, float | int | None] | None = None,
        providers: Iterable[str] | bool | None = False,
        admin: bool | None = None,
    ) -> TokenRecord:
        """Change limits (a key with ``None`` goes back to ``[limits]``), providers (``None``:
        all; ``False``: unchanged) or the admin flag."""
        values: dict[str, Any] = {}
        for key, value in (limits or {}).items():
            if key not in ("requests_per_s", "burst", "max_active_tasks", "tasks_per_day"):
                raise ValidationError(f"unknown limit {key!r}")
            if value is not None and value < 0:
                raise ValidationError(f"{key} must be 0 (off) or more")
            values[key] = value
        if providers is not False:
            values["providers"] = _check_providers(providers)  # type: ignore[arg-type]
        if admin is not None:
            values["admin"] = admin
        if not values:
            return await self.get(name)
        return await self.store.change(name, values)
