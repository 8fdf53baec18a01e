"""PostgreSQL: room in the calls table's pages (fillfactor 70) for the writer's refresh.

A call row is written, then updated when its streams, alerts or headers arrive; with free space
on the page the update is HOT (no new entries in the table's eight indexes). SQLite: nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE calls SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE calls RESET (fillfactor)")
