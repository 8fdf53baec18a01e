"""sip_messages keeps four B-trees: PK, (call_id, ts), from_user, to_user (ingest speed).

Time ranges are partition pruning on PostgreSQL (and a daily retention scan on SQLite); IP
searches go through calls (caller_ip, callee_ip).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DROPPED = {
    "ix_sip_messages_ts": ["ts"],
    "ix_sip_messages_src_ip": ["src_ip"],
    "ix_sip_messages_dst_ip": ["dst_ip"],
}


def upgrade() -> None:
    for name in DROPPED:
        op.drop_index(name, table_name="sip_messages")


def downgrade() -> None:
    for name, columns in DROPPED.items():
        op.create_index(name, "sip_messages", columns)
