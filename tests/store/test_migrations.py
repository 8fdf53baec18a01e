"""Alembic upgrades keep what a store written by an older revision holds."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from callqual.store.engine import migrate, open_store
from callqual.store.schema import sip_message_counts, sip_messages


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_upgrade_from_0001_backfills_headers_and_drops_indexes(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if engine_name == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = open_store(url, migrate=False)
    try:
        migrate(engine, "0001")
        ts = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
        with engine.begin() as conn:
            if engine_name == "postgresql":
                from callqual.store.partitions import ensure_partitions

                ensure_partitions(conn, [ts.date()])
            conn.execute(sip_message_counts.insert().values(call_id="c1", stored=1, dropped=0, last_ts=ts))
            conn.execute(
                sip_messages.insert().values(
                    id=1, ts=ts, frame=1, call_id="c1", src_ip="192.0.2.1", src_port=5060, dst_ip="192.0.2.2",
                    dst_port=5060, transport="udp", is_request=True, method="INVITE", txn_key=7,
                    retransmission=False, first_line="INVITE sip:a@b SIP/2.0", raw=b"INVITE", x_cid="leg-1",
                )
            )  # fmt: skip
        migrate(engine)
        with engine.connect() as conn:
            assert conn.execute(select(sip_message_counts.c.x_cid)).scalar_one() == "leg-1"
            indexes = {i["name"] for i in inspect(conn).get_indexes("sip_messages")}
        assert "ix_sip_messages_src_ip" not in indexes and "ix_sip_messages_call_id_ts" in indexes
    finally:
        engine.dispose()
