"""Hostile input: only SipParseError (or SdpParseError) may ever escape the parsers."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callqual.collector.errors import SdpParseError, SipParseError
from callqual.collector.sip.message import SIP_REASONS, SipMessage, looks_like_sip, parse_sip
from callqual.collector.sip.sdp import SDP_REASONS, parse_sdp, sdp_body

from ._pcap import PCAPS, udp_payloads

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _exercise(msg: SipMessage) -> None:
    """Read every derived property: none of them may raise on a parsed message."""
    _ = (msg.from_uri, msg.from_tag, msg.from_display, msg.to_uri, msg.to_tag, msg.via_branch)
    _ = (msg.vias, msg.user_agent, msg.contact_uri, msg.reason_header, msg.max_forwards)
    _ = msg.key_headers()
    for name, _value in msg.headers:
        msg.header_list(name)
    try:
        body = sdp_body(msg)
        if body is not None:
            parse_sdp(body)
    except SdpParseError as exc:
        assert exc.reason in SDP_REASONS


def _parse_or_reason(data: bytes, strict: bool = False) -> str:
    try:
        msg = parse_sip(data, strict=strict)
    except SipParseError as exc:
        assert exc.reason in SIP_REASONS
        return exc.reason
    _exercise(msg)
    assert set(msg.anomalies) <= SIP_REASONS
    return "ok"


def test_wireshark_fuzz_capture_never_crashes() -> None:
    """Byte-mutated aaa.pcap from Wireshark's 2006 fuzzing: every datagram, SIP or not."""
    outcomes: Counter[str] = Counter()
    lenient: Counter[str] = Counter()
    for _frame, payload in udp_payloads(PCAPS / "nDPI" / "fuzz-2006-06-26-2594.pcap"):
        looks_like_sip(payload)
        outcomes[_parse_or_reason(payload, strict=True)] += 1
        lenient[_parse_or_reason(payload)] += 1
    assert outcomes["ok"] >= 2
    assert outcomes["sip.not_utf8"] > 10
    assert outcomes["sip.no_header_end"] > 10
    assert sum(outcomes.values()) > 500  # every unfragmented UDP datagram
    # The default (lenient) mode reads what the strict one rejects for encoding or framing alone.
    assert lenient["ok"] > outcomes["ok"] + 10
    assert lenient["sip.not_utf8"] == lenient["sip.no_header_end"] == 0


def _seed_messages() -> list[bytes]:
    seeds = []
    for pcap in ["rtp-pcap/aaa.pcap", "heplify/rtp_rtcp_sip_ipv4_udp.pcap"]:
        for _frame, payload in udp_payloads(PCAPS / pcap):
            if looks_like_sip(payload) and b"v=0" in payload:
                seeds.append(payload)
    return seeds[:4]


SEEDS = _seed_messages()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.sampled_from([0, 10, 13, 32, 34, 44, 58, 59, 60, 62, 92, 0xFF, 0xC3]))
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"\r\n", b" ", b'"', b"<", b";tag=", b"\r\n\r\n", b",", b"\\"])
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


def test_seeds_are_valid() -> None:
    assert len(SEEDS) == 4
    for seed in SEEDS:
        assert _parse_or_reason(seed) == "ok"


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    looks_like_sip(data)
    _parse_or_reason(data)


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_after_a_start_line(tail: bytes) -> None:
    _parse_or_reason(b"INVITE sip:a@b SIP/2.0\r\n" + tail)
    _parse_or_reason(b"SIP/2.0 200 OK\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n" + tail)


@FUZZ
@given(mutated(SEEDS))
def test_mutated_captured_messages(data: bytes) -> None:
    looks_like_sip(data)
    _parse_or_reason(data)


@FUZZ
@given(st.binary(max_size=1024))
def test_sdp_arbitrary_bytes(data: bytes) -> None:
    try:
        parse_sdp(data)
    except SdpParseError as exc:
        assert exc.reason in SDP_REASONS


_SDP_LINES = st.sampled_from(
    [
        "v=0",
        "c=IN IP4 10.0.0.1",
        "c=IN IP6 ::1/5",
        "c=IN IP4 224.0.0.1/1/2",
        "m=audio 4000 RTP/AVP 0 8",
        "m=video 0/2 RTP/SAVPF 96",
        "m=image 1 udptl t38",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:96 VP8/90000/1",
        "a=sendonly",
        "a=inactive",
        "a=fmtp:101 0-15",
        "s=\u00e9t\u00e9",
        "t=0 0",
    ]
)


@settings(FUZZ, max_examples=200)
@given(st.lists(st.one_of(_SDP_LINES, st.text(max_size=30)), max_size=20), st.sampled_from(["\r\n", "\n"]))
def test_sdp_line_soup(lines: list[str], eol: str) -> None:
    body = eol.join(["v=0", *lines]).encode("utf-8", "surrogatepass")
    try:
        media = parse_sdp(body)
    except SdpParseError as exc:
        assert exc.reason in SDP_REASONS
        return
    for m in media:
        assert 0 <= m.port <= 65535
        assert all(0 <= pt <= 127 for pt in m.payload_types)
