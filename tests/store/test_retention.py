"""Retention with a clock the test controls: whole days kept, the rest gone, on both engines."""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callqual.store.embedded import analyze_into_store
from callqual.store.partitions import partition_days
from callqual.store.retention import apply_retention, retention_cutoff
from callqual.store.schema import alerts, calls, sip_messages, stream_intervals, streams
from tests.store.captures import analyse, capture, store

OLD = ["rtp-pcap/aaa.pcap", "rtp-pcap/SIP_DTMF2.pcap"]  # 2005-07-04, 2005-09-09
NEW = "rtp-pcap/sip-rtp-g726.pcap"  # 2016-11-26 15:04-15:05 UTC, with interval reports


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calls.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _counts(url: str) -> dict[str, int]:
    with store(url) as engine, engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (calls, streams, stream_intervals, alerts, sip_messages)
        }


def test_cutoff_is_midnight_utc_whole_days() -> None:
    now = datetime(2016, 11, 27, 10, 30, tzinfo=UTC)
    assert retention_cutoff(now, 1) == datetime(2016, 11, 26, tzinfo=UTC)
    assert retention_cutoff(now, 30) == datetime(2016, 10, 28, tzinfo=UTC)
    with pytest.raises(ValueError, match="at least one day"):
        retention_cutoff(now, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        retention_cutoff(datetime(2016, 11, 27), 1)


def test_old_days_go_the_kept_days_stay(store_url: str) -> None:
    for name in [*OLD, NEW]:
        analyze_into_store(capture(name), store_url)
    new_report, new_kinds = analyse(NEW)
    before = _counts(store_url)

    with store(store_url) as engine:
        result = apply_retention(engine, datetime(2016, 11, 27, 10, 0, tzinfo=UTC), days=1)
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            with engine.connect() as conn:
                assert partition_days(conn, "sip_messages") == [date(2016, 11, 26)]
            assert result.partitions_dropped == 2 * 2  # two old days, two partitioned tables
    after = _counts(store_url)
    assert after == {
        "calls": new_report.summary.calls,
        "streams": new_report.summary.streams,
        "stream_intervals": new_kinds["rtp_interval"],
        "alerts": new_report.summary.alerts,
        "sip_messages": new_report.summary.sip_messages,
    }
    assert after != before
    if not postgres:
        assert result.deleted["sip_messages"] == before["sip_messages"] - after["sip_messages"]

    # A day later, the last day ages out too; running again is harmless.
    with store(store_url) as engine:
        apply_retention(engine, datetime(2016, 11, 28, 0, 0, tzinfo=UTC), days=1)
        apply_retention(engine, datetime(2016, 11, 28, 0, 0, tzinfo=UTC), days=1)
    assert _counts(store_url) == dict.fromkeys(after, 0)


def test_sqlite_gives_pages_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    for name in [*OLD, NEW]:
        analyze_into_store(capture(name), url)
    with store(url) as engine:
        with engine.connect() as conn:
            pages_before = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        apply_retention(engine, datetime(2030, 1, 1, tzinfo=UTC), days=1)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == 2  # incremental
            assert conn.exec_driver_sql("PRAGMA freelist_count").scalar_one() == 0
            assert conn.exec_driver_sql("PRAGMA page_count").scalar_one() < pages_before


def test_the_store_service_applies_retention_by_its_clock(tmp_path: Path) -> None:
    """``callqual store --retention-days``: hourly by the (injected) wall and monotonic clocks."""
    from prometheus_client import CollectorRegistry

    from callqual.store.service import StoreMetrics, StoreService, StoreSettings, build_engine

    url = f"sqlite:///{tmp_path / 'calls.db'}"
    for name in [*OLD, NEW]:
        analyze_into_store(capture(name), url)
    clock = {"wall": datetime(2016, 11, 27, 10, 0, tzinfo=UTC).timestamp(), "mono": 0.0}
    settings = StoreSettings(url=url, retention_days=1, retention_interval_s=3600)
    engine = build_engine(settings)
    metrics = StoreMetrics(CollectorRegistry())
    service = StoreService(
        engine, settings, metrics, wall=lambda: clock["wall"], monotonic=lambda: clock["mono"]
    )
    try:
        service.retention()
        new_report, _ = analyse(NEW)
        assert _counts(url)["calls"] == new_report.summary.calls
        clock["wall"] += 2 * 86400  # two days later, but within the hour: not yet
        clock["mono"] += 60
        service.retention()
        assert _counts(url)["calls"] == new_report.summary.calls
        clock["mono"] += 3600
        service.retention()
        assert _counts(url)["calls"] == 0
        assert metrics.rows_expired._value.get() > 0
    finally:
        engine.dispose()
