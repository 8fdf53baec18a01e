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

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson
from psycopg.types.json import set_json_dumps
from sqlalchemy import Column, Connection, Dialect, Table

from callqual.store.schema import UtcDateTime

Row = dict[str, Any]
#: How SQLAlchemy's SQLite dialect stores a DateTime (text that sorts as time does)
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _tuples(rows: list[Row], names: Sequence[str]) -> list[Any]:
    """Each row's values in ``names`` order, picked in C (``itemgetter``), not per value in Python."""
    if len(names) == 1:
        return [(row[names[0]],) for row in rows]
    pick = itemgetter(*names)
    return [pick(row) for row in rows]


def _on_conflict(update: dict[str, str]) -> str:
    """The ON CONFLICT action: ``update`` is column -> SQL expression (none: DO NOTHING)."""
    return f"DO UPDATE SET {', '.join(f'{c} = {e}' for c, e in update.items())}" if update else "DO NOTHING"


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


def _json_dumps(value: Any) -> bytes:
    """JSON for jsonb columns by orjson (C; ``json.dumps`` walks nested records in Python): the
    server stores jsonb parsed, so only the values reach the table, never this text's spacing,
    escapes or exponent spelling. What orjson refuses (integers past 64 bits) goes as before.
    One difference: a NaN or infinity (never in a validated model) becomes null, where
    ``json.dumps`` wrote ``NaN``, which the server refused, rejecting the batch."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value).encode()


def _copy_values(
    conn: Connection, target: str, columns: Sequence[Column[Any]], values: Sequence[Sequence[Any]]
) -> None:
    """Binary ``COPY``: no text escaping of raw messages on either side, no parsing on the server.
    JSON values go as Python objects, serialised by :func:`_json_dumps` (set once per connection)."""
    names = ", ".join(c.name for c in columns)
    driver = _driver(conn)
    if not conn.info.get("callqual_json_dumps"):
        set_json_dumps(_json_dumps, driver)
        conn.info["callqual_json_dumps"] = True
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types([_pg_type(c, conn.dialect) for c in columns])
        for row in values:
            copy.write_row(row)


def pg_copy(conn: Connection, table: Table, rows: list[Row], *, only_given: bool = False) -> None:
    """``COPY`` of rows known to be new (the bulk of the volume: SIP messages).

    Several times faster than INSERT; a row another writer stored in the meantime makes the
    transaction fail with a unique violation, and a retry skips it as already stored.
    ``only_given``: the columns of the first row only (the others get their defaults, as
    from an INSERT of those columns); otherwise every column of the table.
    """
    columns = [c for c in table.c if c.name in rows[0]] if only_given else list(table.c)
    _copy_values(conn, table.name, columns, _tuples(rows, [c.name for c in columns]))


def pg_upsert(
    conn: Connection, table: Table, rows: list[Row], key: tuple[str, ...], update: dict[str, str]
) -> None:
    """Upsert ``rows`` (unique by ``key``): ``COPY`` into the staging table, one INSERT ... SELECT.

    ``update``: column -> SQL expression for ON CONFLICT DO UPDATE (none: DO NOTHING).
    """
    columns = [c for c in table.c if c.name in rows[0]]
    names = [c.name for c in columns]
    values = _tuples(rows, names)
    stage = f"stage_{table.name}"
    driver = _driver(conn)
    with driver.cursor() as cursor:
        # A session's temporary table: made once per connection (IF NOT EXISTS is a catalog look-up).
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name})")
    _copy_values(conn, stage, columns, values)
    listed = ", ".join(names)
    with driver.cursor() as cursor:
        cursor.execute(
            f"WITH staged AS (DELETE FROM {stage} RETURNING {listed}) "
            f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM staged "
            f"ON CONFLICT ({', '.join(key)}) {_on_conflict(update)}"
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
    values = [list(t) for t in _tuples(rows, names)]
    # Column by column, only the columns that have a binder; None goes through the binder too:
    # JSON binds it as SQLAlchemy does ('null')
    for i, bind in enumerate(_sqlite_binders(table, names, conn.dialect)):
        if bind is not None:
            for v in values:
                v[i] = bind(v[i])
    return values


def sqlite_insert_new(conn: Connection, table: Table, rows: list[Row]) -> None:
    """``INSERT OR IGNORE`` of every column of ``rows``, values as the driver binds them but
    for times (the widest, most numerous rows: SIP messages, no JSON or floats among them)."""
    names = [c.name for c in table.c]
    values = [list(t) for t in _tuples(rows, names)]
    for i, column in enumerate(table.c):
        if isinstance(column.type, UtcDateTime):
            for v in values:
                v[i] = _sqlite_time(v[i])
    marks = ", ".join("?" for _ in names)
    _driver(conn).executemany(
        f"INSERT OR IGNORE INTO {table.name} ({', '.join(names)}) VALUES ({marks})", values
    )


def sqlite_upsert(
    conn: Connection, table: Table, rows: list[Row], key: tuple[str, ...], update: dict[str, str]
) -> None:
    """Upsert ``rows`` through the driver's ``executemany``.

    ``update``: column -> SQL expression for ON CONFLICT DO UPDATE (none: DO NOTHING).
    """
    names = [c.name for c in table.c if c.name in rows[0]]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
        f"ON CONFLICT ({', '.join(key)}) {_on_conflict(update)}"
    )
    _driver(conn).executemany(sql, _sqlite_values(conn, table, names, rows))
