"""Metrics from records and summaries: names, units, bounded labels, counters that only grow."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from callqual.observability.metrics import (
    AlerterMetrics,
    export_capture_stats,
    export_summary,
    observe,
    status_class,
)
from callqual.schemas import AnalysisReport, Summary
from tests.alerter.conftest import make_alert


def value(m: AlerterMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    v = m.registry.get_sample_value(name, labels or {})
    return 0.0 if v is None else v


def test_status_class() -> None:
    assert status_class(200) == "2xx"
    assert status_class(487) == "4xx"
    assert status_class(None) == "none"
    assert status_class(42) == "none"


def test_records_of_the_demo_fill_every_family(demo_report: AnalysisReport) -> None:
    m = AlerterMetrics(CollectorRegistry())
    for rec in [*demo_report.calls, *demo_report.streams, *demo_report.alerts]:
        observe(m, rec)
    invites = [c for c in demo_report.calls if c.method == "INVITE"]
    total = sum(
        value(m, "callqual_calls_total", {"category": c, "status_class": s})
        for c in {c.category for c in invites}
        for s in {status_class(c.final_status) for c in invites}
    )
    assert total == len(invites)
    answered = sum(1 for c in invites if c.final_status == 200)
    assert (
        sum(
            value(m, "callqual_calls_total", {"category": c, "status_class": "2xx"})
            for c in {c.category for c in invites}
        )
        == answered
    )
    assert value(m, "callqual_call_mos_count") == sum(1 for c in invites if c.mos is not None)
    assert value(m, "callqual_stream_jitter_seconds_count") == len(demo_report.streams)
    # Jitter is in seconds: the demo's heavy-jitter call is tens of ms, i.e. < 0.1 s.
    assert 0 < value(m, "callqual_stream_jitter_seconds_sum") < 0.1 * len(demo_report.streams)
    assert value(m, "callqual_alerts_total", {"rule": "packet_loss", "severity": "critical"}) >= 1
    text = generate_latest(m.registry).decode()
    # No per-call, per-address or per-URI label anywhere.
    for forbidden in ("call_id=", "source_ip=", "uri=", "10.1.0."):
        assert forbidden not in text


def test_export_summary_adds_only_growth() -> None:
    m = AlerterMetrics(CollectorRegistry())
    base = dict(
        source="live", bytes=0, first_ts=None, last_ts=None, sip_messages=0, calls=0, streams=0, alerts=0
    )
    export_summary(
        m, Summary(frames=100, errors={"sip.bad_start_line": 2}, dropped={"calls.evicted": 1}, **base)
    )
    export_summary(m, Summary(frames=150, errors={"sip.bad_start_line": 5}, skipped={"x.y": 1}, **base))
    assert value(m, "callqual_packets_captured_total") == 150
    assert value(m, "callqual_parse_errors_total", {"reason": "sip.bad_start_line"}) == 5
    assert value(m, "callqual_dropped_total", {"reason": "calls.evicted"}) == 1
    assert value(m, "callqual_skipped_total", {"reason": "x.y"}) == 1
    # A restarted source counts from zero again.
    export_summary(m, Summary(frames=10, **base))
    assert value(m, "callqual_packets_captured_total") == 160


def test_capture_stats_by_where() -> None:
    m = AlerterMetrics(CollectorRegistry())
    export_capture_stats(m, "eth1", received=1000, kernel_dropped=3, if_dropped=0, ours=1)
    export_capture_stats(m, "eth1", received=1500, kernel_dropped=5, if_dropped=0, ours=1)
    assert value(m, "callqual_packets_captured_total") == 1500
    assert value(m, "callqual_packets_dropped_total", {"where": "kernel"}) == 5
    assert value(m, "callqual_packets_dropped_total", {"where": "ours"}) == 1
    assert value(m, "callqual_packets_dropped_total", {"where": "interface"}) == 0


def test_alert_labels_are_bounded() -> None:
    m = AlerterMetrics(CollectorRegistry())
    observe(m, make_alert("a", rule="x" * 500))
    assert value(m, "callqual_alerts_total", {"rule": "x" * 64, "severity": "warning"}) == 1
