"""Schema migrations: an existing database upgrades in place, replicas starting together migrate
once, and the migrations build exactly the tables the code declares."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import app.batches.store
import app.tasks.outbox
import app.tasks.store
import app.tenants.tokens  # noqa: F401 - registers vgw_tokens on the metadata
from app.db import metadata
from app.db.migrate import HEAD, alembic_config, current_revision, head_revision, upgrade
from app.tasks.leases import FileInstanceLocks, Leases
from app.tasks.models import TaskStatus
from app.tasks.store import TaskStore
from tests.processes import REPO, settings_env

LEGACY = Path(__file__).with_name("legacy_v0_1.sql")

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def legacy_database(path: Path, *, before_leases: bool = False) -> str:
    with sqlite3.connect(path) as conn:
        conn.executescript(LEGACY.read_text())
        if before_leases:
            conn.executescript(
                "DROP INDEX ix_vgw_tasks_lease_until;"
                "ALTER TABLE vgw_tasks DROP COLUMN lease_until;"
                "ALTER TABLE vgw_tasks DROP COLUMN lease_owner;"
            )
    return f"sqlite:///{path}"


async def test_a_database_from_before_migrations_upgrades_in_place(tmp_path: Path) -> None:
    url = legacy_database(tmp_path / "gateway.db")
    assert current_revision(url) is None
    assert upgrade(url) == (None, head_revision())
    assert upgrade(url) == (head_revision(), head_revision())  # idempotent

    store = TaskStore.from_url(url)
    try:
        done = await store.get("vt_legacy_done")
        assert done is not None and done.status is TaskStatus.SUCCEEDED
        assert done.video_key == "videos/2026/11/20/x.mp4" and done.submit_started_at is None
        # The running task's old process is gone: the first gateway to start takes it over.
        leases = Leases(store, FileInstanceLocks(tmp_path / "locks", "new-process"))
        await leases.start()
        [claimed] = await leases.claim()
        assert claimed.id == "vt_legacy_running" and claimed.provider_task_id == "cgt-legacy-1"
        assert claimed.attempts == 1 and claimed.lease_owner == "new-process"
        await leases.close()
    finally:
        await store.aclose()


async def test_a_database_from_before_leases_gains_them(tmp_path: Path) -> None:
    url = legacy_database(tmp_path / "gateway.db", before_leases=True)
    upgrade(url)
    store = TaskStore.from_url(url)
    try:
        claimed = await store.claim("me", lease_s=30)
        assert {task.id for task in claimed} == {"vt_legacy_running"}
    finally:
        await store.aclose()


def test_head_names_the_newest_migration() -> None:
    # Start-up skips Alembic when the database is at HEAD: a stale HEAD would skip a migration.
    assert head_revision() == HEAD


def test_a_database_at_head_is_recognised_without_loading_alembic(empty_database: str) -> None:
    url = empty_database
    script = (
        "import sys; from app.db.migrate import upgrade; "
        "print(upgrade(sys.argv[1]), 'alembic' in sys.modules)"
    )

    def upgrade_in_a_new_process() -> str:
        run = subprocess.run(
            [sys.executable, "-c", script, url], cwd=REPO, capture_output=True, check=True
        )
        return run.stdout.decode().strip()

    assert upgrade_in_a_new_process() == f"(None, '{HEAD}') True"  # empty: Alembic migrates
    assert upgrade_in_a_new_process() == f"('{HEAD}', '{HEAD}') False"
    # One revision behind: Alembic is loaded again and brings it up.
    previous = f"{int(HEAD) - 1:04d}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), previous)
    finally:
        engine.dispose()
    assert upgrade_in_a_new_process() == f"('{previous}', '{HEAD}') True"


def test_replicas_starting_together_migrate_once(fresh_postgres_url: str) -> None:
    env = settings_env({"database": {"url": fresh_postgres_url}})
    command = [sys.executable, "-m", "app", "db", "upgrade"]
    processes = [
        subprocess.Popen(
            command, cwd=REPO, env={**env, "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert sum("upgraded: empty ->" in out for out in outputs) == 1, outputs
    assert sum("up to date" in out for out in outputs) == 2, outputs
    assert current_revision(fresh_postgres_url) == head_revision()


def test_the_migrations_build_what_the_code_declares(empty_database: str) -> None:
    url = empty_database
    upgrade(url)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []
