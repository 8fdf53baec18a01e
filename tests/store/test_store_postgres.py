"""The same store on a real PostgreSQL: migrations, daily partitions, rows equal to SQLite's."""

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select, text

from callqual.store.embedded import analyze_into_store
from callqual.store.partitions import partition_days
from callqual.store.schema import alerts, calls, sip_message_counts, sip_messages, stream_intervals, streams
from tests.store.captures import CAPTURES, analyse, capture, store

#: Columns whose values are assigned in write order, not taken from the input.
_ORDER_DEPENDENT = {"seq"}


def dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every stored row of every table, as comparable tuples in key order."""
    out = {}
    with store(url) as engine, engine.connect() as conn:
        for table in (calls, streams, stream_intervals, alerts, sip_messages, sip_message_counts):
            columns = [c for c in table.c if c.name not in _ORDER_DEPENDENT]
            keys = list(table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(select(*columns).order_by(*keys))]
    return out


@pytest.mark.parametrize("name", CAPTURES)
def test_postgres_rows_equal_sqlite_rows_and_the_report(postgres_url: str, tmp_path: Path, name: str) -> None:
    report, kinds = analyse(name)
    pg = analyze_into_store(capture(name), postgres_url)
    lite_url = f"sqlite:///{tmp_path / 'calls.db'}"
    analyze_into_store(capture(name), lite_url)
    pg_rows, lite_rows = dump(postgres_url), dump(lite_url)
    assert pg_rows == lite_rows
    assert len(pg_rows["sip_messages"]) == report.summary.sip_messages == pg.stats.messages_stored
    assert len(pg_rows["calls"]) == report.summary.calls
    assert len(pg_rows["streams"]) == report.summary.streams
    assert len(pg_rows["alerts"]) == report.summary.alerts
    assert len(pg_rows["stream_intervals"]) == kinds["rtp_interval"]
    # A second run upserts: nothing doubles.
    analyze_into_store(capture(name), postgres_url)
    assert dump(postgres_url) == pg_rows


def test_messages_land_in_daily_partitions(postgres_url: str) -> None:
    analyze_into_store(capture("rtp-pcap/aaa.pcap"), postgres_url)  # 2005-07-04
    with store(postgres_url) as engine, engine.connect() as conn:
        assert partition_days(conn, "sip_messages") == [date(2005, 7, 4)]
        only = conn.execute(text("SELECT count(*) FROM ONLY sip_messages")).scalar_one()
        in_partition = conn.execute(text("SELECT count(*) FROM sip_messages_p20050704")).scalar_one()
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'sip_messages'")).scalar_one()
    assert (kind, only, in_partition) == ("p", 0, 81)


def test_migration_is_idempotent(postgres_url: str) -> None:
    with store(postgres_url):
        pass
    with store(postgres_url) as engine, engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0005"
        options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'calls'")).scalar_one()
        assert options == ["fillfactor=70"]
        record_types = conn.execute(
            text(
                "SELECT table_name, data_type FROM information_schema.columns"
                " WHERE column_name = 'record' ORDER BY table_name"
            )
        ).all()
        assert [tuple(r) for r in record_types] == [("calls", "json"), ("streams", "json")]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_leg_correlation_headers_reach_the_call_row(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """heplify/sip_sctp.pcap: a Russian operator's INVITE with a P-Charging-Vector."""
    url = f"sqlite:///{tmp_path / 'c.db'}" if engine == "sqlite" else request.getfixturevalue("postgres_url")
    report = analyze_into_store(capture("heplify/sip_sctp.pcap"), url)
    (call,) = report.report.calls
    with store(url) as e, e.connect() as conn:
        row = conn.execute(
            select(calls.c.p_charging_vector, calls.c.x_cid).where(calls.c.call_id == call.call_id)
        ).one()
        first = (
            conn.execute(
                select(sip_messages.c.p_charging_vector)
                .where(sip_messages.c.call_id == call.call_id)
                .order_by(sip_messages.c.ts)
            )
            .scalars()
            .first()
        )
    assert row.p_charging_vector == first
    assert row.p_charging_vector is not None and row.p_charging_vector.startswith("icid-value=l3IAkHDw")
    assert "orig-ioi=astrakhan.megafonvolga.ru" in row.p_charging_vector
    assert row.x_cid is None
