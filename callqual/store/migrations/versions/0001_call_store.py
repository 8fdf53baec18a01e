"""The call store: calls, streams, stream intervals, alerts, SIP messages (daily partitions on PostgreSQL).

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("seq", KEY, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("call_id", sa.Text(), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("first_ts", UTC_TS, nullable=False),
        sa.Column("last_ts", UTC_TS, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("details", JSON_DOC, nullable=False),
        sa.Column("evidence", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("seq", name=op.f("uq_alerts_seq")),
    )
    op.create_index(op.f("ix_alerts_call_id"), "alerts", ["call_id"], unique=False)
    op.create_index(op.f("ix_alerts_first_ts"), "alerts", ["first_ts"], unique=False)
    op.create_index(op.f("ix_alerts_rule_first_ts"), "alerts", ["rule", "first_ts"], unique=False)
    op.create_index(op.f("ix_alerts_source_ip"), "alerts", ["source_ip"], unique=False)
    op.create_table(
        "calls",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("start_ts", UTC_TS, nullable=False),
        sa.Column("answer_ts", UTC_TS, nullable=True),
        sa.Column("end_ts", UTC_TS, nullable=True),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("from_uri", sa.Text(), nullable=True),
        sa.Column("to_uri", sa.Text(), nullable=True),
        sa.Column("from_user", sa.Text(), nullable=True),
        sa.Column("to_user", sa.Text(), nullable=True),
        sa.Column("caller_ip", sa.String(length=64), nullable=True),
        sa.Column("callee_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("final_status", sa.Integer(), nullable=True),
        sa.Column("final_reason", sa.Text(), nullable=True),
        sa.Column("failure_class", sa.String(length=32), nullable=True),
        sa.Column("reason_header", sa.Text(), nullable=True),
        sa.Column("hangup_by", sa.String(length=8), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("problems", JSON_DOC, nullable=False),
        sa.Column("problem", sa.Boolean(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("post_dial_delay_ms", sa.Float(), nullable=True),
        sa.Column("setup_time_ms", sa.Float(), nullable=True),
        sa.Column("codec", sa.String(length=64), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("retransmissions", sa.Integer(), nullable=False),
        sa.Column("unreliable", sa.Boolean(), nullable=False),
        sa.Column("closed_by", sa.String(length=16), nullable=False),
        sa.Column("first_frame", sa.Integer(), nullable=False),
        sa.Column("worst_mos", sa.Float(), nullable=True),
        sa.Column("mean_mos", sa.Float(), nullable=True),
        sa.Column("worst_loss", sa.Float(), nullable=True),
        sa.Column("worst_jitter_ms", sa.Float(), nullable=True),
        sa.Column("model_score", sa.Float(), nullable=True),
        sa.Column("x_cid", sa.Text(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("p_charging_vector", sa.Text(), nullable=True),
        sa.Column("record", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_calls")),
    )
    op.create_index(op.f("ix_calls_callee_ip"), "calls", ["callee_ip"], unique=False)
    op.create_index(op.f("ix_calls_caller_ip"), "calls", ["caller_ip"], unique=False)
    op.create_index(op.f("ix_calls_category_start_ts"), "calls", ["category", "start_ts"], unique=False)
    op.create_index(op.f("ix_calls_from_user"), "calls", ["from_user"], unique=False)
    op.create_index(op.f("ix_calls_start_ts"), "calls", ["start_ts"], unique=False)
    op.create_index(op.f("ix_calls_to_user"), "calls", ["to_user"], unique=False)
    op.create_index(op.f("ix_calls_worst_mos"), "calls", ["worst_mos"], unique=False)
    op.create_table(
        "sip_message_counts",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.Column("last_ts", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_sip_message_counts")),
    )
    op.create_index(op.f("ix_sip_message_counts_last_ts"), "sip_message_counts", ["last_ts"], unique=False)
    op.create_table(
        "sip_messages",
        sa.Column("id", KEY, autoincrement=False, nullable=False),
        sa.Column("ts", UTC_TS, nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("src_ip", sa.String(length=64), nullable=False),
        sa.Column("src_port", sa.Integer(), nullable=False),
        sa.Column("dst_ip", sa.String(length=64), nullable=False),
        sa.Column("dst_port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("is_request", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("cseq_num", sa.BigInteger(), nullable=True),
        sa.Column("cseq_method", sa.String(length=32), nullable=True),
        sa.Column("from_user", sa.Text(), nullable=True),
        sa.Column("to_user", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("txn_key", KEY, nullable=False),
        sa.Column("retransmission", sa.Boolean(), nullable=False),
        sa.Column("first_line", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("x_cid", sa.Text(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column("p_charging_vector", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", "ts", name=op.f("pk_sip_messages")),
        postgresql_partition_by="RANGE (ts)",
    )
    op.create_index(op.f("ix_sip_messages_call_id_ts"), "sip_messages", ["call_id", "ts"], unique=False)
    op.create_index(op.f("ix_sip_messages_dst_ip"), "sip_messages", ["dst_ip"], unique=False)
    op.create_index(op.f("ix_sip_messages_from_user"), "sip_messages", ["from_user"], unique=False)
    op.create_index(op.f("ix_sip_messages_src_ip"), "sip_messages", ["src_ip"], unique=False)
    op.create_index(op.f("ix_sip_messages_to_user"), "sip_messages", ["to_user"], unique=False)
    op.create_index(op.f("ix_sip_messages_ts"), "sip_messages", ["ts"], unique=False)
    op.create_table(
        "stream_intervals",
        sa.Column("stream_id", KEY, nullable=False),
        sa.Column("ts", UTC_TS, nullable=False),
        sa.Column("call_id", sa.Text(), nullable=True),
        sa.Column("packets", sa.Integer(), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("lost", sa.Integer(), nullable=False),
        sa.Column("loss_ratio", sa.Float(), nullable=False),
        sa.Column("mean_jitter_ms", sa.Float(), nullable=False),
        sa.Column("max_jitter_ms", sa.Float(), nullable=False),
        sa.Column("mos", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("stream_id", "ts", name=op.f("pk_stream_intervals")),
        postgresql_partition_by="RANGE (ts)",
    )
    op.create_index(op.f("ix_stream_intervals_call_id"), "stream_intervals", ["call_id"], unique=False)
    op.create_table(
        "streams",
        sa.Column("stream_id", KEY, autoincrement=False, nullable=False),
        sa.Column("call_id", sa.Text(), nullable=True),
        sa.Column("ssrc", sa.BigInteger(), nullable=False),
        sa.Column("src_ip", sa.String(length=64), nullable=False),
        sa.Column("src_port", sa.Integer(), nullable=False),
        sa.Column("dst_ip", sa.String(length=64), nullable=False),
        sa.Column("dst_port", sa.Integer(), nullable=False),
        sa.Column("first_ts", UTC_TS, nullable=False),
        sa.Column("last_ts", UTC_TS, nullable=False),
        sa.Column("payload_type", sa.Integer(), nullable=False),
        sa.Column("codec", sa.String(length=64), nullable=True),
        sa.Column("packets", sa.Integer(), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("lost", sa.Integer(), nullable=False),
        sa.Column("loss_ratio", sa.Float(), nullable=False),
        sa.Column("mean_jitter_ms", sa.Float(), nullable=False),
        sa.Column("max_jitter_ms", sa.Float(), nullable=False),
        sa.Column("max_delta_ms", sa.Float(), nullable=False),
        sa.Column("mos", sa.Float(), nullable=True),
        sa.Column("r_factor", sa.Float(), nullable=True),
        sa.Column("unreliable", sa.Boolean(), nullable=False),
        sa.Column("record", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_streams")),
    )
    op.create_index(op.f("ix_streams_call_id"), "streams", ["call_id"], unique=False)
    op.create_index(op.f("ix_streams_first_ts"), "streams", ["first_ts"], unique=False)


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("calls")
    op.drop_table("sip_message_counts")
    op.drop_table("sip_messages")
    op.drop_table("stream_intervals")
    op.drop_table("streams")
