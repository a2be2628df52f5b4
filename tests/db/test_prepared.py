"""Statements run on SQLite's cursor (``app.db.prepared``) store and read values exactly as
SQLAlchemy Core does, and fail as Core fails."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.db.engine import create_engine_for, db_now
from app.db.prepared import Prepared

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("data", sa.JSON),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("count", sa.Integer),
    sa.Column("flag", sa.Boolean),
)
VALUES: dict[str, Any] = {
    "data": {"prompt": "雪中奔跑的红狐", "tags": [1, 2.5, None, True], "nested": {"k": "v"}},
    "at": dt.datetime(2026, 11, 30, 23, 59, 58, 123456, tzinfo=dt.UTC),
    "count": 7,
    "flag": True,
}
UPDATE = (
    things.update()
    .where(things.c.id == sa.bindparam("_id"))
    .values({name: sa.bindparam(name) for name in VALUES})
    .returning(*things.c)
)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'p.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(things.insert(), [{"id": "core"}, {"id": "prepared"}])
    return engine


def stored_text(engine: sa.Engine, row_id: str) -> tuple[Any, ...]:
    """The row as SQLite holds it (no type processing)."""
    with engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT data, at, count, flag FROM things WHERE id = ?", (row_id,)
        ).one()
    return tuple(found)


def test_values_are_stored_and_returned_as_through_core(engine: sa.Engine) -> None:
    prepared = Prepared(UPDATE, engine.dialect)
    with engine.begin() as conn:
        through_core = dict(conn.execute(UPDATE, {"_id": "core", **VALUES}).one()._mapping)
        through_cursor = prepared.first(conn, {"_id": "prepared", **VALUES})
    assert stored_text(engine, "prepared") == stored_text(engine, "core")
    assert through_cursor == {**through_core, "id": "prepared"}
    assert through_cursor["data"] == VALUES["data"] and through_cursor["flag"] is True


def test_no_row_is_none_and_literals_in_the_statement_are_bound(engine: sa.Engine) -> None:
    # strftime's format and 'now' are bound parameters the caller does not give.
    dated = (
        things.update()
        .where(things.c.id == sa.bindparam("_id"), things.c.at < db_now("sqlite"))
        .values(count=sa.bindparam("count"))
        .returning(things.c.count)
    )
    with engine.begin() as conn:
        conn.execute(things.update().values(at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
        prepared = Prepared(dated, engine.dialect)
        assert prepared.first(conn, {"_id": "core", "count": 3}) == {"count": 3}
        assert prepared.first(conn, {"_id": "missing", "count": 3}) is None


def test_a_missing_value_is_refused_not_written_as_null(engine: sa.Engine) -> None:
    prepared = Prepared(UPDATE, engine.dialect)
    with engine.begin() as conn, pytest.raises(sa.exc.ArgumentError, match="'count'"):
        prepared.first(conn, {"_id": "core", **{k: v for k, v in VALUES.items() if k != "count"}})
    assert stored_text(engine, "core") == (None, None, None, None)


def test_driver_errors_are_raised_as_sqlalchemy_raises_them(engine: sa.Engine) -> None:
    prepared = Prepared(UPDATE, engine.dialect)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE things")
        with pytest.raises(sa.exc.OperationalError, match="no such table"):
            prepared.first(conn, {"_id": "core", **VALUES})


def test_only_for_drivers_with_positional_parameters() -> None:
    postgres = sa.create_engine("postgresql+psycopg://u@127.0.0.1/none")
    with pytest.raises(ValueError, match="postgresql"):
        Prepared(UPDATE, postgres.dialect)
