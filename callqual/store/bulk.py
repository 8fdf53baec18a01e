"""Bulk writes straight through each engine's driver, below SQLAlchemy's per-row machinery.

The writer's batches hold thousands of rows per table; SQLAlchemy's per-statement compile and
per-value processing, and psycopg's pure-Python array dumping, cost more than the databases
themselves did. What reaches the database is the same as SQLAlchemy would have bound:
SQLite gets each column type's own bind processor (with a direct path for our UTC times),
PostgreSQL gets binary ``COPY`` (dumped by psycopg's C code).

PostgreSQL upserts go through a session temporary table per target (``stage_<table>``):
``COPY`` into it, then one ``INSERT ... SELECT ... ON CONFLICT`` that also empties it
(``DELETE ... RETURNING``), so no row lingers past the statement that uses it.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Table

from callqual.store.schema import UtcDateTime

Row = dict[str, Any]
#: How SQLAlchemy's SQLite dialect stores a DateTime (text that sorts as time does)
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _driver(conn: Connection) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


# -- PostgreSQL --------------------------------------------------------------------------


#: SQLAlchemy's PostgreSQL type names -> the type psycopg dumps for (where they differ)
_PG_COPY_TYPES = {"float": "float8"}


def _pg_type(column: Column[Any], dialect: Dialect) -> str:
    name = column.type.dialect_impl(dialect).compile(dialect=dialect).lower().split("(", 1)[0]
    return _PG_COPY_TYPES.get(name, name)


def _copy_values(
    conn: Connection, target: str, columns: Sequence[Column[Any]], values: Sequence[Sequence[Any]]
) -> None:
    """Binary ``COPY``: no text escaping of raw messages on either side, no parsing on the server.
    JSON values go as Python objects: psycopg's jsonb dumper serialises them with ``json.dumps``."""
    names = ", ".join(c.name for c in columns)
    with (
        _driver(conn).cursor() as cursor,
        cursor.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types([_pg_type(c, conn.dialect) for c in columns])
        for row in values:
            copy.write_row(row)


def pg_copy(conn: Connection, table: Table, rows: list[Row]) -> None:
    """``COPY`` of rows known to be new (the bulk of the volume: SIP messages).

    Several times faster than INSERT; a row another writer stored in the meantime makes the
    transaction fail with a unique violation, and a retry skips it as already stored.
    """
    names = [c.name for c in table.c]
    _copy_values(conn, table.name, list(table.c), [[row[c] for c in names] for row in rows])


def pg_upsert(
    conn: Connection, table: Table, rows: list[Row], key: tuple[str, ...], update: dict[str, str]
) -> None:
    """Upsert ``rows`` (unique by ``key``): ``COPY`` into the staging table, one INSERT ... SELECT.

    ``update``: column -> SQL expression for ON CONFLICT DO UPDATE (none: DO NOTHING).
    """
    columns = [c for c in table.c if c.name in rows[0]]
    names = [c.name for c in columns]
    values = [[row[n] for n in names] for row in rows]
    stage = f"stage_{table.name}"
    driver = _driver(conn)
    with driver.cursor() as cursor:
        # A session's temporary table: made once per connection (IF NOT EXISTS is a catalog look-up).
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name})")
    _copy_values(conn, stage, columns, values)
    listed = ", ".join(names)
    conflict = (
        f"DO UPDATE SET {', '.join(f'{c} = {e}' for c, e in update.items())}" if update else "DO NOTHING"
    )
    with driver.cursor() as cursor:
        cursor.execute(
            f"WITH staged AS (DELETE FROM {stage} RETURNING {listed}) "
            f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM staged "
            f"ON CONFLICT ({', '.join(key)}) {conflict}"
        )


# -- SQLite ----------------------------------------------------------------------------


def _sqlite_time(value: datetime | None) -> str | None:
    """What ``UtcDateTime`` then SQLAlchemy's SQLite DateTime bind: UTC, naive, as sortable text."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the call store; use timezone-aware UTC")
        value = value.astimezone(UTC)
    # SQLITE_DATETIME's text; isoformat is C code without strftime's format parsing (half the time)
    return value.isoformat(" ", "microseconds")[:26]


def _sqlite_binders(
    table: Table, names: Sequence[str], dialect: Dialect
) -> list[Callable[[Any], Any] | None]:
    binders: list[Callable[[Any], Any] | None] = []
    for name in names:
        column = table.c[name]
        if isinstance(column.type, UtcDateTime):
            binders.append(_sqlite_time)
        else:
            binders.append(column.type.dialect_impl(dialect).bind_processor(dialect))
    return binders


def _sqlite_values(conn: Connection, table: Table, names: Sequence[str], rows: list[Row]) -> list[list[Any]]:
    binders = _sqlite_binders(table, names, conn.dialect)
    # None goes through the binder too: JSON binds it as SQLAlchemy does ('null')
    return [
        [v if f is None else f(v) for f, v in zip(binders, [row[n] for n in names], strict=True)]
        for row in rows
    ]


def sqlite_insert_new(conn: Connection, table: Table, rows: list[Row]) -> None:
    """``INSERT OR IGNORE`` of every column of ``rows``, values as the driver binds them but
    for times (the widest, most numerous rows: SIP messages, no JSON or floats among them)."""
    names = [c.name for c in table.c]
    times = {c.name for c in table.c if isinstance(c.type, UtcDateTime)}
    values = [[_sqlite_time(row[c]) if c in times else row[c] for c in names] for row in rows]
    marks = ", ".join("?" for _ in names)
    _driver(conn).executemany(
        f"INSERT OR IGNORE INTO {table.name} ({', '.join(names)}) VALUES ({marks})", values
    )


def sqlite_upsert(
    conn: Connection, table: Table, rows: list[Row], key: tuple[str, ...], update: list[str]
) -> None:
    """Upsert ``rows`` through the driver's ``executemany``; ``update``: columns overwritten on conflict."""
    names = [c.name for c in table.c if c.name in rows[0]]
    conflict = f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in update)}" if update else "DO NOTHING"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
        f"ON CONFLICT ({', '.join(key)}) {conflict}"
    )
    _driver(conn).executemany(sql, _sqlite_values(conn, table, names, rows))
