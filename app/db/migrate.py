"""Schema migrations with Alembic, run once however many processes start together.

``upgrade(url)`` brings a database to the newest schema. Gateways call it at start-up
(``[database] migrate_on_start``, on by default) and operators can run it themselves with
``python -m app db upgrade``. Several replicas starting together on an empty PostgreSQL take
turns on an advisory lock, so exactly one runs the migrations and the others find them done;
on SQLite a file lock beside the database does the same for processes on one host.

A database made before migrations existed (a ``vgw_tasks`` table, no ``alembic_version``) is
upgraded in place: the first migration adopts the table as it finds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.db.engine import create_engine_for, sqlite_path

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_lock(namespace, key): the migration lock's namespace ("vgw" + 1).
MIGRATION_LOCK = (0x76677701, 0)
_LOCK_PARAMS = {"ns": MIGRATION_LOCK[0], "key": MIGRATION_LOCK[1]}


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads; merge them: {heads}")
    return heads[0]


def current_revision(url: str) -> str | None:
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _migration_lock(conn: sa.Connection, url: str) -> Iterator[None]:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_lock(:ns, :key)"), _LOCK_PARAMS)
        conn.commit()  # the session lock outlives the statement's transaction
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :key)"), _LOCK_PARAMS)
            conn.commit()
        return
    path = sqlite_path(url)
    if path is None:  # an in-memory database has one user by definition
        yield
        return
    with _file_lock(path.with_name(path.name + ".migrate.lock")):
        yield


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database at ``url``; return its revision before and after."""
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn, _migration_lock(conn, url):
            before = MigrationContext.configure(conn).get_current_revision()
            conn.commit()
            with conn.begin():
                command.upgrade(alembic_config(conn), revision)
            after = MigrationContext.configure(conn).get_current_revision()
            conn.commit()
    finally:
        engine.dispose()
    if before != after:
        logger.info("database schema upgraded: %s -> %s", before or "empty", after)
    return before, after
