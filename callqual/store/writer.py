"""Writes analysis output into the call store, idempotently, one transaction per batch.

Every row is upserted by a key the analysis makes deterministic (Call-ID, alert id, stream
and message hashes), so at-least-once input (Kafka replays, re-running ``analyze --store``
on a capture) never doubles a row. SIP messages are bounded per Call-ID; what is not kept
is counted in ``sip_message_counts``. Derived call columns (mean MOS, worst loss, model
score, leg-correlation headers) are refreshed from the stored rows after every batch, so
they come out the same whichever of a call's record, streams, alerts or messages came last.

Several writers (``callqual store --members N``) may write at once, each its own share of the
topics' partitions, so a call's record, streams, alerts and messages can be written by different
processes. On PostgreSQL every transaction writes ``calls`` last, holding ``calls`` in SHARE ROW
EXCLUSIVE mode (after ``alerts``, when it has alerts: always that order, so no deadlock on
them): the refresh then reads every stream, alert and count committed by the writers before it,
and a writer after it refreshes again, so no derived value is lost between two members. What a
rival can still make fail (a deadlock or duplicate key while a moved partition is replayed) is
rolled back and written again (``conflicts``).
"""

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Table,
    Text,
    any_,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, StatementError
from sqlalchemy.sql.expression import ColumnElement

from callqual.schemas import AnalysisReport, CallStateUpdate, RtpStreamReport, SipMessageEvent
from callqual.store import rows as wire
from callqual.store.bulk import pg_copy, pg_upsert, sqlite_upsert
from callqual.store.message_writes import RETRANSMISSION_WINDOW, MessageWrites, WriteStats
from callqual.store.partitions import create_partitions
from callqual.store.prepared import Batch, PreparedBatch, prepare
from callqual.store.schema import (
    alerts,
    calls,
    sip_message_counts,
    stream_intervals,
    streams,
)

#: ``Batch`` is re-exported: callers have always imported it from here.
__all__ = [
    "CONFLICT_STATES",
    "CONFLICT_TRIES",
    "RETRANSMISSION_WINDOW",
    "Batch",
    "PreparedBatch",
    "StoreWriter",
    "WriteStats",
    "is_conflict",
    "is_unavailable",
]

#: Rows per INSERT statement: under SQLite's bound-parameter limit for our widest table.
_CHUNK = 500
#: SQLSTATEs of a transaction another writer made fail: deadlock_detected, serialization_failure,
#: unique_violation (a row it committed first: rows within a batch are unique), lock_not_available.
CONFLICT_STATES = frozenset({"40P01", "40001", "23505", "55P03"})
#: Tries of a batch that conflicts with other writers before the error is raised
CONFLICT_TRIES = 5
#: Columns the writer derives after the batch, never taken from the incoming call row.
_DERIVED = (
    "mean_mos",
    "worst_loss",
    "worst_jitter_ms",
    "model_score",
    "x_cid",
    "session_id",
    "p_charging_vector",
)


def is_conflict(exc: BaseException) -> bool:
    """A concurrent writer made this transaction fail (write it again), by SQLSTATE: raised
    through SQLAlchemy, or by the driver itself (``COPY`` goes to psycopg directly)."""
    origin = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(origin, "sqlstate", None) in CONFLICT_STATES


def is_unavailable(exc: BaseException) -> bool:
    """The database could not be reached (write again later), as opposed to refusing the data."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


#: The derived call columns of many calls in one statement (PostgreSQL): each call's aggregates
#: once (one look-up of its streams, one of its alerts, one of its message counts), and only
#: rows whose values change are written (no dead tuple for a call nothing new touched).
_PG_REFRESH = text(
    f"""
    UPDATE calls SET {", ".join(f"{c} = v.{c}" for c in _DERIVED)}
    FROM (
        SELECT k.call_id, s.mean_mos, s.worst_loss, s.worst_jitter_ms, a.model_score,
               n.x_cid, n.session_id, n.p_charging_vector
        FROM unnest(CAST(:call_ids AS TEXT[])) AS k(call_id)
        CROSS JOIN LATERAL (
            SELECT avg(mos) FILTER (WHERE packets > 0) AS mean_mos, max(loss_ratio) AS worst_loss,
                   max(max_jitter_ms) AS worst_jitter_ms
            FROM streams WHERE streams.call_id = k.call_id
        ) AS s
        CROSS JOIN LATERAL (
            SELECT max(score) AS model_score FROM alerts
            WHERE alerts.call_id = k.call_id AND alerts.rule = 'anomalous_call'
        ) AS a
        LEFT JOIN sip_message_counts AS n ON n.call_id = k.call_id
    ) AS v
    WHERE calls.call_id = v.call_id
      AND ({", ".join(f"calls.{c}" for c in _DERIVED)})
          IS DISTINCT FROM ({", ".join(f"v.{c}" for c in _DERIVED)})
    """
)


class StoreWriter:
    """Upserts batches into the store behind ``engine`` (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, max_messages_per_call: int = 500) -> None:
        if max_messages_per_call < 1:
            raise ValueError("max_messages_per_call must be at least 1")
        self.engine = engine
        self.max_messages_per_call = max_messages_per_call
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert
        self._message_writes = MessageWrites(self._postgres, max_messages_per_call, self._among)
        #: Days whose PostgreSQL partitions this writer already made sure of
        self._partition_days: set[date] = set()
        #: Transactions rolled back because of another writer and written again
        self.conflicts = 0
        #: Partition creations retried because another writer raced us
        self.partition_races = 0

    def forget_partitions(self) -> None:
        """After retention dropped partitions: check them again before the next insert."""
        self._partition_days.clear()

    # -- entry points ---------------------------------------------------------

    def write_report(
        self,
        report: AnalysisReport,
        messages: Iterable[SipMessageEvent] = (),
        intervals: Iterable[RtpStreamReport] = (),
    ) -> WriteStats:
        """Store an embedded run: the report plus the SIP messages and interval reports it saw."""
        return self.write_batch(self.report_batch(report, messages, intervals))

    @staticmethod
    def report_batch(
        report: AnalysisReport,
        messages: Iterable[SipMessageEvent] = (),
        intervals: Iterable[RtpStreamReport] = (),
    ) -> Batch:
        """What :meth:`write_report` writes, as one batch."""
        return Batch(
            calls=list(report.calls),
            streams=list(report.streams),
            intervals=[r for r in intervals if not r.final],
            alerts=list(report.alerts),
            messages=list(messages),
        )

    def write_batch(self, batch: Batch) -> WriteStats:
        """Write ``batch`` in one transaction: all of it is committed, or none (a transaction
        another writer made fail is written again, up to CONFLICT_TRIES times)."""
        return self.write_prepared(prepare(batch))

    def write_prepared(self, batch: PreparedBatch) -> WriteStats:
        """:meth:`write_batch` of rows built beforehand (:func:`prepared.prepare`), on any thread."""
        self._ensure_days(batch.days)
        for attempt in range(CONFLICT_TRIES):
            try:
                with self.engine.begin() as conn:
                    return self.write_rows(conn, batch)
            except Exception as exc:
                if is_conflict(exc) and attempt + 1 < CONFLICT_TRIES:
                    self.conflicts += 1
                    continue
                wrapped = self._as_sqlalchemy_error(exc)
                if wrapped is None:
                    raise
                raise wrapped from exc
        raise AssertionError("unreachable: the last try returns or raises")

    def _as_sqlalchemy_error(self, exc: Exception) -> StatementError | None:
        """A driver error raised past SQLAlchemy (``COPY`` goes to psycopg directly) as SQLAlchemy's
        class for it (DataError, IntegrityError, OperationalError...), so that callers tell a
        row the database refuses from a database that is away the same way for every statement."""
        driver_error = self.engine.dialect.loaded_dbapi.Error
        if isinstance(exc, DBAPIError) or not isinstance(exc, driver_error):
            return None
        return DBAPIError.instance(None, None, exc, driver_error)

    def ensure_partitions(self, batch: Batch) -> None:
        """PostgreSQL: the daily partitions ``batch`` needs, made before (and outside) its transaction."""
        if self._postgres:
            stamps = {m.ts for m in batch.messages} | {r.last_ts for r in batch.intervals}
            self._ensure_days({wire.utc(ts).date() for ts in stamps})

    def _ensure_days(self, wanted: set[date]) -> None:
        if not self._postgres:
            return
        days = wanted - self._partition_days
        if days:
            self.partition_races += create_partitions(self.engine, days)
            self._partition_days |= days

    def write_in(self, conn: Connection, batch: Batch) -> WriteStats:
        """Write ``batch`` inside the caller's transaction (its partitions made: ``ensure_partitions``)."""
        return self.write_rows(conn, prepare(batch))

    def write_rows(self, conn: Connection, batch: PreparedBatch) -> WriteStats:
        """Write prepared rows inside the caller's transaction (partitions made beforehand)."""
        # Table order: what other writers may also write comes last, under table locks (module docstring).
        self._new_or_upsert(conn, streams, batch.streams, "stream_id")
        self._intervals(conn, batch.intervals)
        stats = self._message_writes.write(conn, batch.messages)
        self._alerts(conn, batch.alerts)
        # Messages change a call row only through leg-correlation headers: most need no refresh.
        touched = batch.touched | stats.header_calls
        if self._postgres and (touched or batch.call_states):
            conn.execute(text("LOCK TABLE calls IN SHARE ROW EXCLUSIVE MODE"))
        self._live_calls(conn, batch.call_states)
        self._calls(conn, batch.calls)
        self._refresh_calls(conn, touched)
        return stats

    def _among(self, column: Column[Any], values: Sequence[Any]) -> Iterator[ColumnElement[bool]]:
        """``column IN values`` in as few statements as the engine allows: on PostgreSQL one
        array parameter (``= ANY``: one cached statement and plan whatever the count), on
        SQLite chunks under its bound-parameter limit."""
        if not values:
            return
        if self._postgres:
            element = BigInteger() if isinstance(column.type, BigInteger) else Text()
            yield column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(element)))
            return
        for chunk in _chunks(values):
            yield column.in_(chunk)

    # -- tables ---------------------------------------------------------------

    def _upsert(
        self,
        conn: Connection,
        table: Table,
        rows: list[dict[str, Any]],
        key: tuple[str, ...],
        keep: tuple[str, ...] = (),
    ) -> None:
        """Insert ``rows``; where ``key`` exists, overwrite every column but the key and ``keep``."""
        key_of = itemgetter(*key)
        by_key = {key_of(r): r for r in rows}
        if not by_key:
            return
        # In key order: two writers upserting the same rows lock them in the same order.
        unique = [by_key[k] for k in sorted(by_key)] if self._postgres else list(by_key.values())
        if self._postgres:
            update = {c: f"EXCLUDED.{c}" for c in unique[0] if c not in key and c not in keep}
            pg_upsert(conn, table, unique, key, update)
            return
        update = {c: f"excluded.{c}" for c in unique[0] if c not in key and c not in keep}
        sqlite_upsert(conn, table, unique, key, update)

    def _calls(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Call rows (on PostgreSQL under the calls table lock: no writer adds one meanwhile)."""
        self._new_or_upsert(conn, calls, rows, "call_id", keep=_DERIVED)

    def _new_or_upsert(
        self,
        conn: Connection,
        table: Table,
        rows: list[dict[str, Any]],
        key: str,
        *,
        keep: tuple[str, ...] = (),
        stored: set[Any] | None = None,
    ) -> None:
        """Upsert ``rows`` by the single-column ``key``; on PostgreSQL the new ones (nearly all:
        a record arrives once) are copied straight into the table after one look-up of which
        are stored (``stored``, when the caller knows), and only the stored ones go through
        the staging table and ``ON CONFLICT``. A rival adding one of the new rows meanwhile
        makes the copy fail with a unique violation: the batch is written again (``conflicts``)."""
        if not self._postgres:
            self._upsert(conn, table, rows, (key,), keep=keep)
            return
        by_key = {r[key]: r for r in rows}
        if stored is None:
            stored = set()
            for among in self._among(table.c[key], sorted(by_key)):
                stored.update(conn.execute(select(table.c[key]).where(among)).scalars())
        self._upsert(conn, table, [r for k, r in by_key.items() if k in stored], (key,), keep=keep)
        new = [by_key[k] for k in sorted(by_key) if k not in stored]
        if new:
            pg_copy(conn, table, new, only_given=True)

    def _intervals(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Interval reports: a stream's state at one time never changes, so on PostgreSQL the new
        ones are copied straight into their partitions and the stored ones skipped (one look-up),
        instead of staging + ``INSERT ... ON CONFLICT``; a rival's concurrent copy is a conflict."""
        if not self._postgres:
            self._upsert(conn, stream_intervals, rows, ("stream_id", "ts"))
            return
        by_key = {(r["stream_id"], r["ts"]): r for r in rows}
        if not by_key:
            return
        i = stream_intervals.c
        low, high = min(ts for _, ts in by_key), max(ts for _, ts in by_key)
        stored: set[tuple[Any, Any]] = set()
        for among in self._among(i.stream_id, sorted({s for s, _ in by_key})):
            query = select(i.stream_id, i.ts).where(i.ts >= low, i.ts <= high, among)
            stored.update((s, ts) for s, ts in conn.execute(query))
        fresh = [by_key[k] for k in sorted(by_key) if k not in stored]
        if fresh:
            pg_copy(conn, stream_intervals, fresh)

    def _live_calls(self, conn: Connection, updates: list[CallStateUpdate]) -> None:
        """Rows for calls in flight; a row its call's record wrote already is never overwritten."""
        latest = {u.call_id: u for u in sorted(updates, key=lambda u: u.ts)}
        rows = [wire.live_call_row(u) for u in latest.values()]
        if not rows:
            return
        stmt = self._insert(calls)
        update_cols = {c: stmt.excluded[c] for c in rows[0] if c != "call_id"}
        still_live = calls.c.closed_by == wire.LIVE_CALL
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["call_id"], set_=update_cols, where=still_live), rows
        )

    def _alerts(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Upsert alerts (one row per id); new ones are numbered after every committed one (the
        live-feed cursor)."""
        if not rows:
            return
        if self._postgres:
            # One numbering writer at a time, so seq order is commit order.
            conn.execute(text("LOCK TABLE alerts IN SHARE ROW EXCLUSIVE MODE"))
        ids = [r["alert_id"] for r in rows]
        query = select(alerts.c.alert_id, alerts.c.seq).where(alerts.c.alert_id.in_(ids))
        known = {alert_id: seq for alert_id, seq in conn.execute(query)}
        next_seq = int(conn.execute(select(func.coalesce(func.max(alerts.c.seq), 0))).scalar_one()) + 1
        for row in sorted(rows, key=lambda r: (r["first_ts"], r["alert_id"])):
            if row["alert_id"] in known:
                row["seq"] = known[row["alert_id"]]
            else:
                row["seq"] = next_seq
                next_seq += 1
        self._new_or_upsert(conn, alerts, rows, "alert_id", keep=("seq",), stored=set(known))

    def _refresh_calls(self, conn: Connection, call_ids: set[str]) -> None:
        """Derived call columns from the call's stored streams, alerts and first messages."""
        if not call_ids:
            return
        if self._postgres:
            conn.execute(_PG_REFRESH, {"call_ids": sorted(call_ids)})
            return
        c = calls.c
        s, a, n = streams.c, alerts.c, sip_message_counts.c

        def first_header(column: str) -> ColumnElement[Any]:
            return select(n[column]).where(n.call_id == c.call_id).scalar_subquery()

        values: dict[str, Any] = {
            "mean_mos": select(func.avg(s.mos))
            .where(s.call_id == c.call_id, s.packets > 0)
            .scalar_subquery(),
            "worst_loss": select(func.max(s.loss_ratio)).where(s.call_id == c.call_id).scalar_subquery(),
            "worst_jitter_ms": select(func.max(s.max_jitter_ms))
            .where(s.call_id == c.call_id)
            .scalar_subquery(),
            "model_score": select(func.max(a.score))
            .where(a.call_id == c.call_id, a.rule == "anomalous_call")
            .scalar_subquery(),
            **{column: first_header(column) for column in wire.CORRELATION_HEADERS},
        }
        for among in self._among(c.call_id, sorted(call_ids)):
            conn.execute(update(calls).where(among).values(values))
