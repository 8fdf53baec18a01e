"""On real captures, ``analyze`` raises what a VoIP engineer expects, and nothing on clean calls."""

from collections import Counter
from pathlib import Path

import pytest

from callqual.pipeline.embedded import analyze_file
from tests.shared_captures import PCAPS

CLEAN_CODEC_CALLS = sorted((PCAPS / "rtp-pcap").glob("sip-rtp-*.pcap"))


def test_aaa_auth_failures_and_the_cancelled_call() -> None:
    report = analyze_file(PCAPS / "rtp-pcap/aaa.pcap")
    calls = {c.call_id: c for c in report.calls}
    # The 407 challenge is answered, then the credentials are refused: a 403 auth failure.
    auth = [c for c in calls.values() if c.final_status == 403]
    assert len(auth) == 2
    assert {c.category for c in auth} == {"failed_auth"}
    assert all(c.requests["INVITE"] == 2 for c in auth), "challenge and retry are one call"
    cancelled = calls["105090259-446faf7a@192.168.1.2"]
    assert cancelled.state == "cancelled"
    assert cancelled.requests["CANCEL"] == 1 and cancelled.retransmissions >= 10
    failed = [a for a in report.alerts if a.rule == "call_failed"]
    assert Counter(a.details["failure_class"] for a in failed) == {"forbidden": 2, "unreachable": 2}
    for alert in failed:
        assert alert.evidence, "alerts cite the SIP messages behind them"
        assert any(ev.first_line.startswith("SIP/2.0 4") for ev in alert.evidence)


def test_fuzzed_capture_raises_malformed_sip_with_evidence() -> None:
    report = analyze_file(PCAPS / "nDPI/fuzz-2006-06-26-2594.pcap")
    (malformed,) = [a for a in report.alerts if a.rule == "malformed_sip"]
    assert malformed.source_ip == "192.168.1.2"
    assert malformed.evidence and all(ev.frame > 0 for ev in malformed.evidence)
    assert sum(v for k, v in report.summary.errors.items() if k.startswith("sip.")) >= 10


def test_sip_over_tcp_retransmission_is_counted_and_not_a_false_alarm() -> None:
    """The capture's retransmission is a TCP resend of a 200 OK: counted as such, not a second message."""
    report = analyze_file(PCAPS / "heplify/sip_ipv4_tcp_retrans.pcap")
    assert report.summary.sip_messages == 8
    assert report.summary.skipped["tcp.retransmission"] == 1
    assert report.alerts == []


@pytest.mark.parametrize("path", CLEAN_CODEC_CALLS, ids=lambda p: p.name)
def test_clean_codec_calls_raise_no_alert(path: Path) -> None:
    report = analyze_file(path)
    assert report.calls and {c.category for c in report.calls} == {"ok"}
    assert report.alerts == []


def test_codec_renegotiated_by_a_reinvite_is_no_mismatch() -> None:
    """PCMU runs until a re-INVITE moves the call to opus: each stream ran under what was negotiated."""
    report = analyze_file(PCAPS / "sipnab/register-invite-reinvite-bye.pcap")
    (call,) = report.calls
    assert call.requests["INVITE"] == 2
    assert Counter(s.codec for s in report.streams) == {"PCMU": 2, "opus": 2}
    assert [a.rule for a in report.alerts] == []
    assert call.category == "ok"
