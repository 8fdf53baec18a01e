"""RTCP reports against tshark's decoding of the two shared RTCP captures, plus damaged input."""

import struct

import pytest

from callqual.collector.media.rtcp import RtcpParseError, looks_like_rtcp, ntp_middle32, rtcp_events
from callqual.schemas import RtcpEvent
from tests.tshark_reference import PCAPS, fields, requires_tshark

pytestmark = [pytest.mark.tshark, requires_tshark]

CAPTURES = [
    "nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap",
    "rtpproxy/rtcp.o.pcap",
    "heplify/rtp_rtcp_sip_ipv4_udp.pcap",
]


def _udp_from_any_link(path_name: str) -> dict[int, tuple[float, bytes]]:
    """Frame -> (ts, UDP payload), via tshark (one capture is Linux SLL, which the test reader skips)."""
    rows = fields(PCAPS / path_name, "rtcp", ["frame.number", "frame.time_epoch", "udp.payload"])
    return {int(n): (float(t), bytes.fromhex(p.replace(":", ""))) for n, t, p in rows}


@pytest.mark.parametrize("capture", CAPTURES)
def test_report_blocks_match_tshark(capture: str) -> None:
    want_rows = fields(
        PCAPS / capture,
        "rtcp.ssrc.fraction",
        [
            "frame.number",
            "rtcp.ssrc.fraction",
            "rtcp.ssrc.cum_nr",
            "rtcp.ssrc.jitter",
            "rtcp.ssrc.lsr",
            "rtcp.ssrc.dlsr",
        ],
    )
    datagrams = _udp_from_any_link(capture)
    assert datagrams
    checked = 0
    for number, (ts, data) in datagrams.items():
        events = rtcp_events(data, ts, number, "a", 1, "b", 2, None, None)
        assert events, number
    for number_s, fraction, cum, jitter, lsr, dlsr in want_rows:
        number = int(number_s)
        ts, data = datagrams[number]
        blocks = [b for e in rtcp_events(data, ts, number, "a", 1, "b", 2, None, None) for b in e.blocks]
        assert [round(b.fraction_lost * 256) for b in blocks] == [int(x) for x in fraction.split(",")]
        assert [b.cumulative_lost for b in blocks] == [int(x) for x in cum.split(",")]
        assert [b.lsr for b in blocks] == [int(x) for x in lsr.split(",")]
        assert [b.dlsr for b in blocks] == [int(x) for x in dlsr.split(",")]
        raw_jitter = [int(x) for x in jitter.split(",")]
        with_clock = rtcp_events(data, ts, number, "a", 1, "b", 2, None, {b.ssrc: 8000 for b in blocks})
        ms = [b.jitter_ms for e in with_clock for b in e.blocks]
        assert ms == [pytest.approx(j / 8.0) for j in raw_jitter]
        checked += 1
    assert checked or capture == "rtpproxy/rtcp.o.pcap"


def test_several_packets_in_one_datagram() -> None:
    datagrams = _udp_from_any_link(CAPTURES[0])
    for number, (ts, data) in datagrams.items():
        pts = fields(PCAPS / CAPTURES[0], f"frame.number == {number}", ["rtcp.pt"])[0][0].split(",")
        events = rtcp_events(data, ts, number, "a", 1, "b", 2, None)
        assert [e.packet_type for e in events] == [
            "SR" if p == "200" else "RR" for p in pts if p in ("200", "201")
        ]


def test_rtt_from_lsr_dlsr_on_capture_clock() -> None:
    sr_times: dict[int, float] = {}
    t_sr = 1_600_000_000.25
    middle = ntp_middle32(t_sr)
    ntp_sec = int(t_sr) + 2_208_988_800
    frac = int((t_sr % 1) * 2**32)
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, 0xAAAA, ntp_sec, frac, 0, 0, 0)
    assert rtcp_events(sr, t_sr, 1, "a", 1, "b", 2, None, sr_times=sr_times)[0].packet_type == "SR"
    assert middle in sr_times
    dlsr = int(0.5 * 65536)
    block = struct.pack("!IIIIII", 0xAAAA, (64 << 24) | 0xFFFFFE, 100, 800, middle, dlsr)
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0xBBBB) + block
    event = rtcp_events(rr, t_sr + 0.560, 2, "b", 2, "a", 1, None, {0xAAAA: 8000}, sr_times=sr_times)[0]
    b = event.blocks[0]
    assert b.fraction_lost == 0.25 and b.cumulative_lost == -2 and b.jitter_ms == pytest.approx(100.0)
    assert b.rtt_ms == pytest.approx(60.0, abs=0.1)
    # Without the SR seen: the capture clock stands in for A (RFC 3550 6.4.1), same answer here.
    assert rtcp_events(rr, t_sr + 0.560, 2, "b", 2, "a", 1, None)[0].blocks[0].rtt_ms == pytest.approx(
        60.0, abs=0.1
    )


def test_garbage_raises_counted_reason() -> None:
    with pytest.raises(RtcpParseError) as err:
        rtcp_events(b"\x00" * 12, 0.0, 1, "a", 1, "b", 2, None)
    assert err.value.reason == "rtcp.bad_version"
    with pytest.raises(RtcpParseError):
        rtcp_events(struct.pack("!BBH", 0x81, 201, 50) + b"\x00" * 8, 0.0, 1, "a", 1, "b", 2, None)
    good = struct.pack("!BBHI", 0x80, 201, 1, 5)
    errors: list[str] = []
    events = rtcp_events(good + b"\x80\xc9\x00", 0.0, 1, "a", 1, "b", 2, None, errors=errors)
    assert len(events) == 1 and errors == ["rtcp.truncated_header"]
    assert looks_like_rtcp(good) and not looks_like_rtcp(b"\x80\x08" + good[2:])


@pytest.mark.parametrize("capture", CAPTURES)
def test_events_built_unchecked_equal_validated_ones(capture: str) -> None:
    """rtcp_events builds its models with ``trusted`` (no validation): they must be what validation gives."""
    sr_times: dict[int, float] = {}
    checked = 0
    for number, (ts, data) in _udp_from_any_link(capture).items():
        plain = rtcp_events(data, ts, number, "a", 1, "b", 2, "call-1")
        clocks = {b.ssrc: 8000 for e in plain for b in e.blocks}  # jitter_ms in ms, not None
        for run in (plain, rtcp_events(data, ts, number, "a", 1, "b", 2, None, clocks, sr_times=sr_times)):
            for event in run:
                validated = RtcpEvent.model_validate(event.model_dump())
                assert event == validated
                assert event.model_dump_json() == validated.model_dump_json()
                checked += 1
    assert checked
