"""Leg-correlation headers kept per Call-ID in sip_message_counts (the calls row reads one row).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = ("x_cid", "session_id", "p_charging_vector")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("sip_message_counts", sa.Column(name, sa.Text(), nullable=True))
    # Stores written by 0001: the first value of each header among the stored messages.
    for name in COLUMNS:
        op.execute(
            f"UPDATE sip_message_counts SET {name} = (SELECT m.{name} FROM sip_messages m "
            f"WHERE m.call_id = sip_message_counts.call_id AND m.{name} IS NOT NULL "
            "ORDER BY m.ts, m.id LIMIT 1)"
        )


def downgrade() -> None:
    for name in COLUMNS:
        op.drop_column("sip_message_counts", name)
