"""``analyze_into_store`` on SQLite: rows equal the JSON report, re-runs upsert, messages are bounded."""

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from callqual.store import queries
from callqual.store.embedded import analyze_into_store
from callqual.store.engine import open_store
from callqual.store.schema import alerts, calls, sip_message_counts, sip_messages, stream_intervals, streams
from tests.store.captures import CAPTURES, analyse, capture, store


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (calls, streams, stream_intervals, alerts, sip_messages)
        }


@pytest.mark.parametrize("name", CAPTURES)
def test_rows_equal_the_json_report(tmp_path: Path, name: str) -> None:
    report, kinds = analyse(name)
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    stored = analyze_into_store(capture(name), url)
    assert stored.report == report
    with store(url) as engine:
        first = _counts(engine)
        assert first == {
            "calls": report.summary.calls,
            "streams": report.summary.streams,
            "stream_intervals": kinds["rtp_interval"],
            "alerts": report.summary.alerts,
            "sip_messages": report.summary.sip_messages,
        }
        assert report.summary.sip_messages > 0
        # Running the same capture again stores nothing new and renumbers nothing.
        with engine.connect() as conn:
            seqs = dict(conn.execute(select(alerts.c.alert_id, alerts.c.seq)).all())
        again = analyze_into_store(capture(name), url)
        assert again.stats.messages_stored == 0
        assert _counts(engine) == first
        with engine.connect() as conn:
            assert dict(conn.execute(select(alerts.c.alert_id, alerts.c.seq)).all()) == seqs


@pytest.mark.parametrize("name", CAPTURES)
def test_messages_match_the_call_records(tmp_path: Path, name: str) -> None:
    """Each call's stored messages and retransmission flags agree with the detector's counts."""
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    report = analyze_into_store(capture(name), url).report
    with store(url) as engine, engine.connect() as conn:
        for call in report.calls:
            detail = queries.call_detail(conn, call.call_id)
            assert detail is not None
            assert len(detail.messages) == call.messages
            assert sum(m.retransmission for m in detail.messages) == call.retransmissions
            assert [m.ts for m in detail.messages] == sorted(m.ts for m in detail.messages)
            for m in detail.messages:
                assert m.raw.startswith(m.first_line.encode())
                assert m.ts.utcoffset() is not None and m.ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_messages_are_bounded_per_call_and_the_rest_counted(tmp_path: Path) -> None:
    report, _ = analyse("heplify/erspan_sip_ipv4_udp.pcapng")
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    stored = analyze_into_store(capture("heplify/erspan_sip_ipv4_udp.pcapng"), url, max_messages_per_call=5)
    with store(url) as engine, engine.connect() as conn:
        per_call = dict(
            conn.execute(select(sip_messages.c.call_id, func.count()).group_by(sip_messages.c.call_id)).all()
        )
        counted = {
            call_id: (s, d)
            for call_id, s, d in conn.execute(
                select(
                    sip_message_counts.c.call_id, sip_message_counts.c.stored, sip_message_counts.c.dropped
                )
            )
        }
    assert max(per_call.values()) == 5
    assert {k: v[0] for k, v in counted.items()} == per_call
    assert stored.stats.messages_dropped == sum(d for _, d in counted.values()) > 0
    assert stored.stats.messages_stored + stored.stats.messages_dropped == report.summary.sip_messages


def test_unsupported_url_is_refused() -> None:
    from callqual.store.engine import StoreUrlError

    with pytest.raises(StoreUrlError, match="mysql"):
        open_store("mysql://localhost/calls")
