"""A statement compiled once and run on the driver's cursor: for the writes on every task's path.

On SQLite, SQLAlchemy Core costs more per execution than SQLite takes to run the statement.
Each execution looks the statement up in the compiled cache (walking it to make the key),
builds an execution context and a result, and sends every value through its layers. A stage
write (a guarded ``UPDATE … RETURNING`` of the task's row and its event's ``INSERT``) took
about 0.2 ms of interpreter time in the writer thread. A hundred tasks publishing together
then queue behind each other there, and wait their turn for the interpreter lock.

Hand-written because SQLAlchemy has no public way to execute an already compiled statement.
What is hand-written is only the dispatch. The SQL is SQLAlchemy's own compilation. Every
value goes through the bind and result processors of its column's type for the dialect, so
what is stored and read is the same as through Core. A driver error is raised as SQLAlchemy
would raise it (``OperationalError`` and so on).

:func:`runnable` is what callers use: the statement on the cursor for SQLite, through Core
for other databases, behind one interface and built once per statement and dialect.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

_Processor = Callable[[Any], Any] | None
_REQUIRED = object()


class Prepared:
    """``statement`` compiled for ``dialect``, whose driver must take positional ``?``
    parameters (SQLite). Its bind parameters are all named; its rows, if it returns any,
    come back as dicts of the returned columns' names."""

    def __init__(self, statement: sa.ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if dialect.paramstyle != "qmark" or compiled.positiontup is None:
            raise ValueError(f"{dialect.name} does not take positional parameters")
        self.sql = compiled.string
        self._dialect = dialect
        # (name, processor, the value it has in the statement or _REQUIRED: literals such as
        # strftime's format are bound parameters too)
        self._binds = [
            (
                name,
                bind.type.dialect_impl(dialect).bind_processor(dialect),
                _REQUIRED if bind.required else bind.effective_value,
            )
            for name in compiled.positiontup
            for bind in (compiled.binds[name],)
        ]
        returned: Sequence[sa.ColumnElement[Any]] = (
            list(statement.exported_columns)  # type: ignore[attr-defined]
            if getattr(statement, "_returning", None)
            else []
        )
        self._columns: list[tuple[str, _Processor]] = [
            (str(column.key), column.type.dialect_impl(dialect).result_processor(dialect, None))
            for column in returned
        ]

    def first(self, conn: sa.Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """Run it in ``conn``'s transaction; the first row returned, if any."""
        values: list[Any] = []
        for name, process, default in self._binds:
            value = params.get(name, default)
            if value is _REQUIRED:
                raise sa.exc.ArgumentError(f"a value is required for bind parameter {name!r}")
            values.append(value if process is None else process(value))
        driver = conn.connection.driver_connection
        assert driver is not None
        dbapi = self._dialect.loaded_dbapi
        try:
            cursor = driver.execute(self.sql, values)
            row = cursor.fetchone() if self._columns else None
            cursor.close()
        except dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                self.sql, values, exc, dbapi.Error, dialect=self._dialect
            ) from exc
        if row is None:
            return None
        return {
            name: value if process is None else process(value)
            for (name, process), value in zip(self._columns, row, strict=True)
        }


class Core:
    """A statement run through SQLAlchemy Core, with :class:`Prepared`'s interface."""

    def __init__(self, statement: sa.Executable) -> None:
        self._statement = statement

    def first(self, conn: sa.Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        row = conn.execute(self._statement, params).first()
        return dict(row._mapping) if row is not None else None


@functools.lru_cache(maxsize=1024)
def runnable(statement: sa.UpdateBase, dialect: Dialect) -> Prepared | Core:
    """``statement`` ready to run on ``dialect``: on the cursor on SQLite, through Core
    elsewhere. Cached by identity: ``statement`` must itself be built once."""
    return Prepared(statement, dialect) if dialect.name == "sqlite" else Core(statement)
