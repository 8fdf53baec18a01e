"""Our RTP stream statistics against ``tshark -z rtp,streams`` on the shared public captures."""

import math

import pytest

from tests.collector.media.rtp_capture_feed import feed
from tests.tshark_reference import PCAPS, TsharkStream, requires_tshark, rtp_streams

pytestmark = [pytest.mark.tshark, requires_tshark]

CAPTURES = [
    *[(p.relative_to(PCAPS).as_posix(), False) for p in sorted((PCAPS / "rtp-pcap").glob("*.pcap"))],
    ("heplify/rtp_rtcp_sip_ipv4_udp.pcap", False),
    ("heplify/rtp_rtcp_sip_ipv4_udp.pcap", True),
    ("sipp/g711a.pcap", True),
    ("sipp/dtmf_2833_1.pcap", True),
    ("rtpproxy/rtcp.o.pcap", True),
    ("rtpproxy/dtmf.pcap", True),
    ("nDPI/rtp.pcapng", True),
]


def _close(ours: float, theirs: float) -> bool:
    """tshark prints 3 decimals: agree within 0.01 ms or 1 %."""
    return math.isclose(ours, theirs, rel_tol=0.01, abs_tol=0.01)


@pytest.mark.parametrize(("capture", "heuristic"), CAPTURES)
def test_every_column_matches_tshark(capture: str, heuristic: bool) -> None:
    path = PCAPS / capture
    reference = rtp_streams(path, heuristic=heuristic)
    assert reference, f"tshark found no RTP stream in {capture}"
    ours = feed(path, set(reference))
    assert set(ours) == set(reference)
    for key, want in reference.items():
        stream = ours[key]
        got = stream.report(call_id=None, final=True)
        where = f"{capture} {key}"
        assert got.packets == want.packets, where
        assert got.lost == want.lost, where
        assert stream.problem == want.problem, where
        pairs: list[tuple[str, float, float]] = [
            ("min_delta", got.min_delta_ms, want.min_delta_ms),
            ("mean_delta", got.mean_delta_ms, want.mean_delta_ms),
            ("max_delta", got.max_delta_ms, want.max_delta_ms),
            ("min_jitter", got.min_jitter_ms, want.min_jitter_ms),
            ("mean_jitter", got.mean_jitter_ms, want.mean_jitter_ms),
            ("max_jitter", got.max_jitter_ms, want.max_jitter_ms),
        ]
        for name, mine, theirs in pairs:
            assert _close(mine, theirs), f"{where} {name}: ours {mine:.4f} tshark {theirs:.3f}"
        # Start time as tshark prints it is relative to the first frame; check the span instead.
        span_ms = (got.last_ts - got.first_ts) * 1000.0
        assert _close(span_ms, (want.end_time - want.start_time) * 1000.0), where


def test_reference_table_is_parsed_with_spaces_in_payload() -> None:
    rows = rtp_streams(PCAPS / "rtp-pcap/SIP_DTMF2.pcap")
    payloads = {row.payload for row in rows.values()}
    assert "g711A, telephone-event" in payloads
    assert all(isinstance(row, TsharkStream) for row in rows.values())


def test_dtmf_digits_match_tshark_rtpevent() -> None:
    """One event per RFC 4733 event (distinct timestamp), as tshark's rtpevent decoding shows."""
    from tests.tshark_reference import fields

    path = PCAPS / "rtp-pcap/SIP_DTMF2.pcap"
    rows = fields(path, "rtpevent", ["rtp.ssrc", "rtp.timestamp", "rtpevent.event_id"])
    expected: list[str] = []
    seen: set[tuple[str, str]] = set()
    names = "0123456789*#ABCD"
    for ssrc, ts, event in rows:
        if (ssrc, ts) not in seen:
            seen.add((ssrc, ts))
            code = int(event)
            expected.append(names[code] if code < 16 else str(code))
    reference = rtp_streams(path)
    ours = feed(path, set(reference))
    digits = [d for s in ours.values() for d in s.report(None, True).events]
    assert digits == expected
    assert len(digits) >= 3
