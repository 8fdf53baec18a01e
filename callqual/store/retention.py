"""Keep the last N days: PostgreSQL drops whole daily partitions, SQLite deletes and vacuums.

Both engines keep the same thing: every row from midnight UTC ``days`` days before ``now``
onwards (whole days, so a partition is either kept or dropped entire). ``now`` is passed in:
the service passes the wall clock, tests a clock they control.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Engine, Table, delete

from callqual.store.partitions import drop_partitions_before
from callqual.store.schema import (
    PARTITIONED,
    alerts,
    calls,
    sip_message_counts,
    sip_messages,
    stream_intervals,
    streams,
)

#: Table -> the time column that ages its rows.
AGE_COLUMNS: dict[Table, Column[datetime]] = {
    calls: calls.c.start_ts,
    streams: streams.c.first_ts,
    stream_intervals: stream_intervals.c.ts,
    alerts: alerts.c.first_ts,
    sip_messages: sip_messages.c.ts,
    sip_message_counts: sip_message_counts.c.last_ts,
}


@dataclass(frozen=True, slots=True)
class RetentionResult:
    cutoff: datetime
    #: Rows deleted per table (partitioned tables on PostgreSQL are not counted row by row)
    deleted: dict[str, int] = field(default_factory=dict)
    partitions_dropped: int = 0


def retention_cutoff(now: datetime, days: int) -> datetime:
    """Midnight UTC ``days`` days before ``now``: rows older than this go."""
    if days < 1:
        raise ValueError("retention needs at least one day")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    day = (now.astimezone(UTC) - timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def apply_retention(engine: Engine, now: datetime, days: int) -> RetentionResult:
    """Remove everything older than :func:`retention_cutoff` (``now``, ``days``)."""
    cutoff = retention_cutoff(now, days)
    postgres = engine.dialect.name == "postgresql"
    deleted: dict[str, int] = {}
    dropped = 0
    with engine.begin() as conn:
        if postgres:
            dropped = drop_partitions_before(conn, cutoff.date())
        for table, column in AGE_COLUMNS.items():
            if postgres and table.name in PARTITIONED:
                continue
            deleted[table.name] = conn.execute(delete(table).where(column < cutoff)).rowcount
    if not postgres:
        # Give the freed pages back to the file system (auto_vacuum=INCREMENTAL, see engine.py).
        raw = engine.raw_connection()
        try:
            # executescript steps the pragma to the end; execute() would free one page per call.
            raw.driver_connection.executescript("PRAGMA incremental_vacuum;")  # type: ignore[union-attr]
        finally:
            raw.close()
    return RetentionResult(cutoff=cutoff, deleted=deleted, partitions_dropped=dropped)
