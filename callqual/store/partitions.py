"""Daily range partitions of the high-volume tables on PostgreSQL (created on demand, dropped whole).

A partition per UTC day, named ``<table>_pYYYYMMDD``: retention drops a day's table in one
cheap statement instead of deleting millions of rows. No default partition, so a day's
partition can always be created later (a default holding rows of that range would block it).

Several store processes may need the same new day at once: ``create_partitions`` makes each
partition in its own short transaction, outside any batch (the parent's exclusive lock is then
the only lock the creator holds, so it cannot deadlock with writers), one creator at a time
(an advisory lock, so ``IF NOT EXISTS`` sees a rival's committed table), retrying the errors a
race can still raise.
"""

import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from callqual.store.schema import PARTITIONED

#: Advisory lock key serialising partition creation between store processes ("cqpart")
PARTITION_LOCK = 0x6371_7061_7274
#: SQLSTATEs a creation race can raise: unique_violation (pg_type/pg_class name taken under
#: us), deadlock_detected, lock_not_available, serialization_failure, duplicate_table.
_RACE_STATES = frozenset({"23505", "40P01", "55P03", "40001", "42P07"})
_CREATE_TRIES = 5


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


def create_partitions(engine: Engine, days: Iterable[date], tables: Iterable[str] = PARTITIONED) -> int:
    """Make sure the daily partitions of ``tables`` exist for ``days``, each in its own
    transaction; how many race errors were retried (a failure past the retries is raised)."""
    retried = 0
    for table in tables:
        for day in sorted(set(days)):
            for attempt in range(_CREATE_TRIES):
                try:
                    with engine.begin() as conn:
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK})
                        ensure_partitions(conn, [day], [table])
                    break
                except DBAPIError as exc:
                    race = getattr(exc.orig, "sqlstate", None) in _RACE_STATES
                    if not race or attempt + 1 == _CREATE_TRIES:
                        raise
                    retried += 1
                    time.sleep(0.05 * (attempt + 1))
    return retried


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


#: The partitioned tables in the order a batch writes them (intervals, then messages): retention
#: locks them in the same order, so a member's retention cannot deadlock with another's batch.
WRITE_ORDER = ("stream_intervals", "sip_messages")


def drop_partitions_before(conn: Connection, cutoff: date, tables: Iterable[str] = PARTITIONED) -> int:
    """Drop every daily partition that ends on or before ``cutoff``; how many were dropped.

    One process at a time (the partition advisory lock: several members run retention), the
    parents locked in the writers' order first, ``IF EXISTS`` for a partition a rival dropped."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK})
    wanted = set(tables)
    old = [
        (table, day)
        for table in tables
        for day in partition_days(conn, table)
        if day + timedelta(days=1) <= cutoff
    ]
    if not old:
        return 0
    parents = [t for t in WRITE_ORDER if t in wanted] + [t for t in wanted if t not in WRITE_ORDER]
    conn.execute(text(f"LOCK TABLE {', '.join(parents)} IN ACCESS EXCLUSIVE MODE"))
    for table, day in old:
        conn.execute(text(f'DROP TABLE IF EXISTS "{partition_name(table, day)}"'))
    return len(old)
