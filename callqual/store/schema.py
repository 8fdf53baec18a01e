"""The call store's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

Rows are keyed by what the analysis itself makes deterministic (Call-ID, alert id, a hash
of a message's or stream's origin), so at-least-once input upserts instead of doubling.
The two high-volume tables, ``sip_messages`` and ``stream_intervals``, are range-partitioned
by day on PostgreSQL (their primary keys include ``ts`` for that reason); retention drops
whole partitions there. SQLite ignores the partitioning options.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

#: Daily partitions of these tables on PostgreSQL (``partitions.py`` creates and drops them).
PARTITIONED = ("sip_messages", "stream_intervals")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both engines (SQLite keeps naive text; we add UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not UTC:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the call store; use timezone-aware UTC")
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: 64-bit keys; SQLite's INTEGER is already 64-bit.
Key = BigInteger().with_variant(Integer(), "sqlite")
#: JSON documents; binary JSON on PostgreSQL (indexable, compact)
Json = JSON().with_variant(JSONB(), "postgresql")
#: Whole records kept to be read back, never searched inside: plain JSON on PostgreSQL too (kept
#: as sent, checked but not converted: a third of jsonb's server CPU on ingest, migration 0005)
JsonRecord = JSON()

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

calls = Table(
    "calls",
    metadata,
    Column("call_id", Text, primary_key=True),
    Column("start_ts", UtcDateTime, nullable=False),
    Column("answer_ts", UtcDateTime),
    Column("end_ts", UtcDateTime),
    Column("method", String(32), nullable=False),
    Column("from_uri", Text),
    Column("to_uri", Text),
    Column("from_user", Text),
    Column("to_user", Text),
    Column("caller_ip", String(64)),
    Column("callee_ip", String(64)),
    Column("user_agent", Text),
    Column("state", String(16), nullable=False),
    Column("final_status", Integer),
    Column("final_reason", Text),
    Column("failure_class", String(32)),
    Column("reason_header", Text),
    Column("hangup_by", String(8)),
    Column("category", String(32), nullable=False),
    Column("problems", Json, nullable=False),
    Column("problem", Boolean, nullable=False),
    Column("duration_s", Float),
    Column("post_dial_delay_ms", Float),
    Column("setup_time_ms", Float),
    Column("codec", String(64)),
    Column("messages", Integer, nullable=False),
    Column("retransmissions", Integer, nullable=False),
    Column("unreliable", Boolean, nullable=False),
    Column("closed_by", String(16), nullable=False),
    Column("first_frame", Integer, nullable=False),
    # Filled from the call's streams, alerts and messages whichever arrives last (writer.refresh_calls)
    Column("worst_mos", Float),
    Column("mean_mos", Float),
    Column("worst_loss", Float),
    Column("worst_jitter_ms", Float),
    Column("model_score", Float),
    Column("x_cid", Text),
    Column("session_id", Text),
    Column("p_charging_vector", Text),
    #: The CallRecord as the detector published it (everything the columns leave out)
    Column("record", JsonRecord, nullable=False),
    Index(None, "start_ts"),
    Index(None, "from_user"),
    Index(None, "to_user"),
    Index(None, "caller_ip"),
    Index(None, "callee_ip"),
    Index(None, "category", "start_ts"),
    Index(None, "worst_mos"),
)

streams = Table(
    "streams",
    metadata,
    Column("stream_id", Key, primary_key=True, autoincrement=False),
    Column("call_id", Text),
    Column("ssrc", BigInteger, nullable=False),
    Column("src_ip", String(64), nullable=False),
    Column("src_port", Integer, nullable=False),
    Column("dst_ip", String(64), nullable=False),
    Column("dst_port", Integer, nullable=False),
    Column("first_ts", UtcDateTime, nullable=False),
    Column("last_ts", UtcDateTime, nullable=False),
    Column("payload_type", Integer, nullable=False),
    Column("codec", String(64)),
    Column("packets", Integer, nullable=False),
    Column("expected", Integer, nullable=False),
    Column("lost", Integer, nullable=False),
    Column("loss_ratio", Float, nullable=False),
    Column("mean_jitter_ms", Float, nullable=False),
    Column("max_jitter_ms", Float, nullable=False),
    Column("max_delta_ms", Float, nullable=False),
    Column("mos", Float),
    Column("r_factor", Float),
    Column("unreliable", Boolean, nullable=False),
    Column("record", JsonRecord, nullable=False),
    Index(None, "call_id"),
    Index(None, "first_ts"),
)

stream_intervals = Table(
    "stream_intervals",
    metadata,
    Column("stream_id", Key, nullable=False),
    #: The report's time: the stream's last packet when it was cut
    Column("ts", UtcDateTime, nullable=False),
    Column("call_id", Text),
    Column("packets", Integer, nullable=False),
    Column("expected", Integer, nullable=False),
    Column("lost", Integer, nullable=False),
    #: Cumulative since the stream began, as the collector reports; queries derive per-interval figures
    Column("loss_ratio", Float, nullable=False),
    Column("mean_jitter_ms", Float, nullable=False),
    Column("max_jitter_ms", Float, nullable=False),
    Column("mos", Float),
    PrimaryKeyConstraint("stream_id", "ts"),
    Index(None, "call_id"),
    postgresql_partition_by="RANGE (ts)",
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    #: Insertion order (cursor for live feeds): assigned by the writer under a table lock
    Column("seq", Key, nullable=False, unique=True),
    Column("rule", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("category", String(16), nullable=False),
    Column("call_id", Text),
    Column("source_ip", String(64)),
    Column("first_ts", UtcDateTime, nullable=False),
    Column("last_ts", UtcDateTime, nullable=False),
    Column("summary", Text, nullable=False),
    Column("score", Float),
    Column("details", Json, nullable=False),
    Column("evidence", Json, nullable=False),
    Index(None, "first_ts"),
    Index(None, "call_id"),
    Index(None, "rule", "first_ts"),
    Index(None, "source_ip"),
)

sip_messages = Table(
    "sip_messages",
    metadata,
    #: Hash of the message's origin (time, frame, addresses, Call-ID): the same in every replay
    Column("id", Key, nullable=False, autoincrement=False),
    Column("ts", UtcDateTime, nullable=False),
    Column("frame", Integer, nullable=False),
    Column("call_id", Text, nullable=False),
    Column("src_ip", String(64), nullable=False),
    Column("src_port", Integer, nullable=False),
    Column("dst_ip", String(64), nullable=False),
    Column("dst_port", Integer, nullable=False),
    Column("transport", String(8), nullable=False),
    Column("is_request", Boolean, nullable=False),
    Column("method", String(32)),
    Column("status_code", Integer),
    Column("cseq_num", BigInteger),
    Column("cseq_method", String(32)),
    Column("from_user", Text),
    Column("to_user", Text),
    Column("user_agent", Text),
    #: Same transaction, same direction, same start line as an earlier message of the call
    Column("txn_key", Key, nullable=False),
    Column("retransmission", Boolean, nullable=False),
    Column("first_line", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("x_cid", Text),
    Column("session_id", Text),
    Column("p_charging_vector", Text),
    PrimaryKeyConstraint("id", "ts"),
    # Four B-trees per row, not more: every index costs ingest (IP search goes through calls;
    # time ranges are partition pruning on PostgreSQL).
    Index(None, "call_id", "ts"),
    Index(None, "from_user"),
    Index(None, "to_user"),
    postgresql_partition_by="RANGE (ts)",
)

#: Per-call bound on stored SIP messages: how many are kept and how many were not.
sip_message_counts = Table(
    "sip_message_counts",
    metadata,
    Column("call_id", Text, primary_key=True),
    Column("stored", Integer, nullable=False),
    Column("dropped", Integer, nullable=False),
    Column("last_ts", UtcDateTime, nullable=False),
    #: First leg-correlation headers seen in the call's messages (one lookup for the calls row)
    Column("x_cid", Text),
    Column("session_id", Text),
    Column("p_charging_vector", Text),
    Index(None, "last_ts"),
)
