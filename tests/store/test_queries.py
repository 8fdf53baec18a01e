"""The store's searches over a SQLite store holding several real captures (the report is the oracle)."""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection

from callqual.detector.rules.base import uri_user
from callqual.schemas import AnalysisReport, CallRecord
from callqual.store import queries
from callqual.store.embedded import analyze_into_store
from callqual.store.queries import AlertFilter, CallFilter
from tests.store.captures import CAPTURES, capture, store

Loaded = tuple[str, list[AnalysisReport]]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'calls.db'}"
    reports = [analyze_into_store(capture(name), url).report for name in CAPTURES]
    return url, reports


@pytest.fixture
def conn(loaded: Loaded) -> Iterator[Connection]:
    with store(loaded[0]) as engine, engine.connect() as connection:
        yield connection


def _all_calls(loaded: Loaded) -> list[CallRecord]:
    return [c for r in loaded[1] for c in r.calls]


def test_search_orders_problem_calls_first_then_newest(conn: Connection, loaded: Loaded) -> None:
    page = queries.search_calls(conn, CallFilter(limit=1000))
    every = _all_calls(loaded)
    assert page.total == len(every) == len(page.rows)
    assert page.facets == dict(sorted(Counter(c.category for c in every).items()))
    keys = [(not r.problem, -r.start_ts.timestamp()) for r in page.rows]
    assert keys == sorted(keys)
    assert any(r.problem for r in page.rows) and any(not r.problem for r in page.rows)


def test_pages_cover_every_call_once(conn: Connection, loaded: Loaded) -> None:
    seen = []
    for offset in range(0, 100, 3):
        page = queries.search_calls(conn, CallFilter(limit=3, offset=offset))
        seen += [r.call_id for r in page.rows]
    assert sorted(seen) == sorted(c.call_id for c in _all_calls(loaded))


def test_filters(conn: Connection, loaded: Loaded) -> None:
    every = _all_calls(loaded)
    call = next(c for c in every if c.category == "failed_network")
    user = uri_user(call.to_uri)
    assert user is not None

    def ids(f: CallFilter) -> set[str]:
        return {r.call_id for r in queries.search_calls(conn, f).rows}

    assert ids(CallFilter(call_id=call.call_id)) == {call.call_id}
    assert ids(CallFilter(user=user)) == {
        c.call_id for user_of in [uri_user] for c in every if user in (user_of(c.from_uri), user_of(c.to_uri))
    }
    assert call.call_id in ids(CallFilter(user=user[:3] + "*"))
    assert ids(CallFilter(ip=call.caller_ip)) == {
        c.call_id for c in every if call.caller_ip in (c.caller_ip, c.callee_ip)
    }
    assert ids(CallFilter(category="failed_network")) == {
        c.call_id for c in every if c.category == "failed_network"
    }
    assert ids(CallFilter(rule="call_failed")) == {
        a.call_id for r in loaded[1] for a in r.alerts if a.rule == "call_failed"
    }
    assert ids(CallFilter(mos_below=4.3)) == {c.call_id for c in every if c.mos is not None and c.mos < 4.3}
    start = datetime.fromtimestamp(call.start_ts, UTC)
    assert ids(CallFilter(start=start, end=start + timedelta(microseconds=1))) == {
        c.call_id for c in every if c.start_ts == call.start_ts
    }
    assert queries.search_calls(conn, CallFilter(call_id="no-such-call")).total == 0


def test_call_detail_has_streams_intervals_alerts_messages(conn: Connection, loaded: Loaded) -> None:
    report = loaded[1][CAPTURES.index("rtp-pcap/sip-rtp-g726.pcap")]
    call = report.calls[0]
    detail = queries.call_detail(conn, call.call_id)
    assert detail is not None
    assert detail.call.call_id == call.call_id and detail.record["call_id"] == call.call_id
    assert {s.ssrc for s in detail.streams} == {s.ssrc for s in report.streams if s.call_id == call.call_id}
    assert detail.intervals, "a 60 s capture has 10 s interval reports"
    assert all(0.0 <= i.interval_loss_ratio <= 1.0 for i in detail.intervals)
    assert {i.stream_id for i in detail.intervals} <= {s.stream_id for s in detail.streams}
    assert detail.call.mean_mos is not None and detail.call.worst_mos is not None
    assert detail.call.mean_mos >= detail.call.worst_mos
    assert detail.messages[0].first_line.startswith("INVITE")
    assert queries.call_detail(conn, "no-such-call") is None


def test_alert_search_and_evidence(conn: Connection, loaded: Loaded) -> None:
    every = [a for r in loaded[1] for a in r.alerts]
    page = queries.search_alerts(conn, AlertFilter(limit=1000))
    assert page.total == len(every)
    assert [a.first_ts for a in page.rows] == sorted((a.first_ts for a in page.rows), reverse=True)
    rule = every[0].rule
    assert queries.search_alerts(conn, AlertFilter(rule=rule)).total == sum(a.rule == rule for a in every)
    assert queries.search_alerts(conn, AlertFilter(category="failure")).total > 0
    assert queries.search_alerts(conn, AlertFilter(severity="no-such")).total == 0
    source = every[0].source_ip
    assert queries.search_alerts(conn, AlertFilter(source=source)).total == sum(
        a.source_ip == source for a in every
    )
    for alert in every:
        detail = queries.alert_detail(conn, alert.alert_id)
        assert detail is not None
        # Every evidence message of a call alert is a stored SIP message of that capture.
        assert len(detail.messages) + len(detail.unresolved) == len(alert.evidence)
        assert [m.frame for m in detail.messages] == [e.frame for e in alert.evidence][: len(detail.messages)]
        assert not detail.unresolved
    assert queries.alert_detail(conn, "nope") is None


def test_alerts_after_follows_insertion_order(conn: Connection, loaded: Loaded) -> None:
    total = sum(len(r.alerts) for r in loaded[1])
    seen, cursor = [], 0
    while True:
        rows, cursor = queries.alerts_after(conn, cursor, limit=2)
        if not rows:
            break
        seen += rows
    assert len(seen) == total == cursor == queries.latest_alert_cursor(conn)
    assert [a.seq for a in seen] == list(range(1, total + 1))
    assert queries.alerts_after(conn, cursor) == ([], cursor)


def test_overview(conn: Connection, loaded: Loaded) -> None:
    report = loaded[1][CAPTURES.index("rtp-pcap/sip-rtp-g726.pcap")]
    since = datetime.fromtimestamp(min(c.start_ts for c in report.calls), UTC)
    until = since + timedelta(minutes=5)
    o = queries.overview(conn, since, until)
    in_window = [c for r in loaded[1] for c in r.calls if since.timestamp() <= c.start_ts < until.timestamp()]
    assert o.calls == len(in_window) == sum(m.calls for m in o.calls_per_minute)
    invites = [c for c in in_window if c.method == "INVITE"]
    assert o.answer_seizure_ratio == sum(c.answer_ts is not None for c in invites) / len(invites)
    assert sum(b.calls for b in o.mos_histogram) == sum(c.mos is not None for c in in_window)
    assert all(m.minute.tzinfo is not None for m in o.calls_per_minute)
