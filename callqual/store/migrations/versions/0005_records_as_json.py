"""PostgreSQL: the calls' and streams' whole ``record`` as json, not jsonb (ingest CPU).

The record is written once and read back whole, never searched inside: jsonb's conversion on
every insert cost the server about three times json's check (0.24 vs 0.08 s CPU per 16,776
records, bench/RESULTS.md "Session 5, branch store-members"). Rewrites both tables once.
SQLite: nothing (JSON is text there either way).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("calls", "streams")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN record TYPE json USING record::json")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN record TYPE jsonb USING record::jsonb")
