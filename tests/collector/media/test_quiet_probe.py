"""Which calls report between interval ticks: media one way only, or a stream never reported."""

import statistics
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.collector.media.quiet_probe import probed_flows
from callqual.collector.service import CollectorService, CollectorServiceSettings
from callqual.schemas import AnyEvent, RtpStreamReport
from tests.detector.live_replay import filter_udp
from tests.shared_captures import PCAPS

#: heplify's real call (see tests/detector/test_live_alerts.py): RTP both ways from 200.57.7.204:8000
HEPLIFY = PCAPS / "heplify" / "rtp_rtcp_sip_ipv4_udp.pcap"
STOP_AT = 1105725496.0
#: the caller's side of that call
CALLER_RTP_PORT = 40376

NEVER = float("-inf")


@dataclass
class Flow:
    name: str
    last_ts: float
    reported_ts: float
    #: its last packet at that report: just before the tick, or none for a fresh flow
    reported_last_ts: float = NEVER

    def __post_init__(self) -> None:
        if self.reported_ts != NEVER:
            self.reported_last_ts = min(self.last_ts, self.reported_ts - 0.01)


def _probed(now: float, interval_s: float = 2.0, **calls: list[Flow]) -> list[str]:
    return [f.name for f in probed_flows(calls, now, interval_s)]


def test_a_call_flowing_both_ways_waits_for_the_interval_tick() -> None:
    assert _probed(103.0, call=[Flow("a", 102.98, 100.0), Flow("b", 102.99, 100.0)]) == []


def test_a_call_with_one_direction_quiet_reports_what_moved_since_its_last_report() -> None:
    # b stopped at 99.5, before its last report: only a has news
    call = [Flow("a", 102.98, 100.0), Flow("b", 99.5, 100.0)]
    assert _probed(103.0, call=call) == ["a"]
    # ... and at most once per interval
    assert _probed(101.5, call=call) == []
    # b stopped after its last report: both report, or the batch would show b older than it is
    assert _probed(103.0, call=[Flow("a", 102.98, 100.0), Flow("b", 101.2, 100.0)]) == ["a", "b"]


def test_a_call_with_media_one_way_only_and_a_fresh_flow_report() -> None:
    assert _probed(103.0, call=[Flow("a", 102.98, 100.0)]) == ["a"]
    assert _probed(103.0, call=[Flow("a", 102.98, 100.0), Flow("b", 102.9, NEVER)]) == ["a", "b"]


def test_a_call_quiet_both_ways_is_not_probed() -> None:
    assert _probed(110.0, call=[Flow("a", 102.0, 103.0), Flow("b", 101.0, 103.0)]) == []


def test_calls_are_judged_each_on_its_own() -> None:
    got = _probed(
        103.0,
        up=[Flow("u1", 102.98, 100.0), Flow("u2", 102.99, 100.0)],
        one_way=[Flow("o1", 102.98, 100.0), Flow("o2", 99.0, 100.0)],
    )
    assert got == ["o1"]


def _interval_reports(capture: Path, quiet_report_interval_s: float) -> tuple[list[RtpStreamReport], int]:
    reports: list[RtpStreamReport] = []

    def keep(event: AnyEvent) -> None:
        if isinstance(event, RtpStreamReport) and not event.final:
            reports.append(event)

    collector = Collector(keep, CollectorConfig(quiet_report_interval_s=quiet_report_interval_s))
    with open_capture(capture) as pcap:
        collector.run(pcap)
    return reports, collector.counters["rtp.quiet_probe_reports"]


def test_a_real_call_cut_one_way_reports_often_without_a_duplicate_row(tmp_path: Path) -> None:
    """heplify's real call with the callee's RTP cut mid-call: the caller's stream reports every ~2 s."""
    cut = tmp_path / "oneway.pcap"
    assert filter_udp(HEPLIFY, cut, lambda ts, src, sport, *_: not (sport == 8000 and ts >= STOP_AT)) > 100
    reports, probed = _interval_reports(cut, 2.0)
    ticks_only, none = _interval_reports(cut, 0.0)
    assert probed > 0 and none == 0
    # every report says something new (the store keys interval rows by stream and last packet)
    keys = [(r.ssrc, r.src_port, r.last_ts) for r in reports]
    assert len(keys) == len(set(keys))

    def caller_after_cut(rs: list[RtpStreamReport]) -> list[float]:
        return [r.last_ts for r in rs if r.src_port == CALLER_RTP_PORT and r.last_ts > STOP_AT]

    # the caller itself suppresses silence (no probe while both sides pause), yet reports 2 s apart
    assert len(caller_after_cut(reports)) >= 3 * len(caller_after_cut(ticks_only)) > 0
    assert statistics.median(b - a for a, b in pairwise(caller_after_cut(reports))) == pytest.approx(
        2.0, abs=0.1
    )


def test_the_service_takes_both_report_intervals_from_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLQUAL_COLLECTOR_QUIET_REPORT_INTERVAL_S", "0")
    service = CollectorService(CollectorServiceSettings(pcap="capture.pcap", report_interval_s=5.0))
    assert (service.collector.config.report_interval_s, service.collector.config.quiet_report_interval_s) == (
        5.0,
        0,
    )
