"""Engines and the database clock.

Lease times come from the database's clock, never a host's: on PostgreSQL ``now()``; on SQLite
(one host by definition) SQLite's own ``'now'``, formatted exactly as SQLAlchemy stores
datetimes there so that comparisons between stored values and the clock stay correct.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

# SQLAlchemy stores SQLite datetimes as "YYYY-MM-DD HH:MM:SS.ffffff"; SQLite's %f is "SS.SSS".
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f000"


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver we ship)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///…`` URL (None for other databases or memory)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def create_engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return sa.create_engine(normalise_url(url), pool_pre_ping=True, pool_size=10, max_overflow=20)


def db_now(dialect: str) -> sa.ColumnElement[Any]:
    """The database's current time, as an SQL expression comparable with stored datetimes."""
    if dialect == "sqlite":
        return sa.func.strftime(_SQLITE_FORMAT, "now", type_=sa.DateTime(timezone=True))
    return sa.func.now()


def db_later(dialect: str, seconds: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """``now + seconds`` on the database's clock (``seconds`` is usually a bind parameter)."""
    if dialect == "sqlite":
        modifier = sa.func.printf("%+.3f seconds", seconds)
        return sa.func.strftime(_SQLITE_FORMAT, "now", modifier, type_=sa.DateTime(timezone=True))
    return sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)
