"""Daily range partitions of the high-volume tables on PostgreSQL (created on demand, dropped whole).

A partition per UTC day, named ``<table>_pYYYYMMDD``: retention drops a day's table in one
cheap statement instead of deleting millions of rows. No default partition, so a day's
partition can always be created later (a default holding rows of that range would block it).
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, text

from callqual.store.schema import PARTITIONED


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _bounds(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def ensure_partitions(conn: Connection, days: Iterable[date], tables: Iterable[str] = PARTITIONED) -> None:
    """Create the daily partitions of ``tables`` for ``days`` that do not exist yet."""
    for table in tables:
        for day in sorted(set(days)):
            low, high = _bounds(day)
            conn.execute(
                text(
                    f'CREATE TABLE IF NOT EXISTS "{partition_name(table, day)}" PARTITION OF "{table}" '
                    f"FOR VALUES FROM ('{low}') TO ('{high}')"
                )
            )


def partition_days(conn: Connection, table: str) -> list[date]:
    """The days ``table`` has partitions for, oldest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :table"
        ),
        {"table": table},
    ).scalars()
    prefix = f"{table}_p"
    return sorted(datetime.strptime(name[len(prefix) :], "%Y%m%d").date() for name in rows)


def drop_partitions_before(conn: Connection, cutoff: date, tables: Iterable[str] = PARTITIONED) -> int:
    """Drop every daily partition that ends on or before ``cutoff``; how many were dropped."""
    dropped = 0
    for table in tables:
        for day in partition_days(conn, table):
            if day + timedelta(days=1) <= cutoff:
                conn.execute(text(f'DROP TABLE "{partition_name(table, day)}"'))
                dropped += 1
    return dropped
