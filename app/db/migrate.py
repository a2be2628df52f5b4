"""Schema migrations with Alembic, run once however many processes start together.

``upgrade(url)`` brings a database to the newest schema. Gateways call it at start-up
(``[database] migrate_on_start``, on by default) and operators can run it themselves with
``python -m app db upgrade``. Several replicas starting together on an empty PostgreSQL take
turns on an advisory lock, so exactly one runs the migrations and the others find them done;
on SQLite a file lock beside the database does the same for processes on one host.

A database made before migrations existed (a ``vgw_tasks`` table, no ``alembic_version``) is
upgraded in place: the first migration adopts the table as it finds it.

Alembic itself is loaded only when there is something to do. A database already at :data:`HEAD`
(every start but the first after an upgrade) is recognised with one ``SELECT``: loading Alembic
and its migration scripts costs a quarter of a second, which a gateway restarted after a crash
should spend resuming its tasks.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from app.db.engine import create_engine_for, sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

#: The newest migration's revision: a new migration updates it (tests/db/test_migrations.py
#: fails until it names the migration scripts' head).
HEAD = "0007"
MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_lock(namespace, key): the migration lock's namespace ("vgw" + 1).
MIGRATION_LOCK = (0x76677701, 0)
_LOCK_PARAMS = {"ns": MIGRATION_LOCK[0], "key": MIGRATION_LOCK[1]}


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The migration scripts' head, as Alembic reads it."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads; merge them: {heads}")
    return heads[0]


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _recorded_revision(conn: sa.Connection) -> str | None:
    """``alembic_version``'s revision, read without Alembic (``None``: no such table)."""
    try:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        revision = None
    conn.rollback()
    return revision


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
        if revision in ("head", HEAD):
            with engine.connect() as conn:
                if _recorded_revision(conn) == HEAD:
                    return HEAD, HEAD
        from alembic import command
        from alembic.runtime.migration import MigrationContext

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
