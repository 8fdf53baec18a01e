"""Crafted streams: numbers computed by hand from RFC 3550 A.1/A.3/A.8, then checked against tshark too."""

import random
import struct
from pathlib import Path

import dpkt
import pytest

from callqual.collector.media.rtp_header import looks_like_rtp, parse_rtp
from callqual.collector.media.rtp_stream import RtpStream
from tests.tshark_reference import requires_tshark, rtp_streams

SRC, SPORT, DST, DPORT, SSRC = "10.0.0.1", 40000, "10.0.0.2", 40002, 0x11223344
T0 = 1_700_000_000.0

Pkt = tuple[float, int, int, bool]  # arrival, seq, rtp ts, marker


def _regular(n: int, first_seq: int = 1000, period: float = 0.020) -> list[Pkt]:
    return [(T0 + i * period, (first_seq + i) & 0xFFFF, (160 * i) & 0xFFFFFFFF, False) for i in range(n)]


def _run(packets: list[Pkt]) -> RtpStream:
    stream = RtpStream(SRC, SPORT, DST, DPORT, SSRC, 1, {})
    for frame, (ts, seq, rtp_ts, marker) in enumerate(packets, 1):
        stream.add(ts, frame, seq, rtp_ts, 0, marker, 160, None)
    return stream


def _write_pcap(path: Path, packets: list[Pkt]) -> None:
    with path.open("wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for ts, seq, rtp_ts, marker in packets:
            rtp = struct.pack("!BBHII", 0x80, (0x80 if marker else 0), seq, rtp_ts, SSRC) + b"\xd5" * 160
            udp = dpkt.udp.UDP(sport=SPORT, dport=DPORT, data=rtp)
            udp.ulen = 8 + len(rtp)
            ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=17, data=udp)
            ip.len = 20 + udp.ulen
            eth = dpkt.ethernet.Ethernet(src=b"\x00" * 6, dst=b"\x00" * 6, type=0x0800, data=ip)
            writer.writepkt(bytes(eth), ts=ts)


def _loss(n: int, drop: set[int]) -> list[Pkt]:
    return [p for i, p in enumerate(_regular(n)) if i not in drop]


def _cases() -> dict[str, list[Pkt]]:
    rng = random.Random(20240611)
    random_drop = {i for i in range(1, 999) if rng.random() < 0.30}
    burst_drop = {i for start in range(10, 1000, 50) for i in range(start, start + 5)}
    # seq 1005 overtakes seq 1004: arrivals t4 + 5 ms and t4 + 15 ms.
    reordered = _regular(10)
    t4 = reordered[4][0]
    reordered[4] = (t4 + 0.015, *reordered[4][1:])
    reordered[5] = (t4 + 0.005, *reordered[5][1:])
    reordered.sort()
    duplicated = _regular(10)
    duplicated.insert(6, (duplicated[5][0] + 0.001, *duplicated[5][1:]))
    late = _regular(10)
    late[5] = (late[5][0] + 0.010, *late[5][1:])
    return {
        "wrap": _regular(40, first_seq=65520),
        "duplicate": duplicated,
        "reorder": reordered,
        "random30": _loss(1000, random_drop),
        "bursts": _loss(1000, burst_drop),
        "late10ms": late,
    }


CASES = _cases()


def test_sequence_wrap_is_not_loss() -> None:
    got = _run(CASES["wrap"]).report(None, True)
    assert (got.packets, got.expected, got.lost, got.seq_errors) == (40, 40, 0, 0)
    assert got.min_delta_ms == pytest.approx(20.0, abs=1e-3) and got.max_delta_ms == pytest.approx(
        20.0, abs=1e-3
    )
    assert got.max_jitter_ms == pytest.approx(0.0, abs=1e-3)


def test_duplicate_makes_wireshark_loss_negative() -> None:
    stream = _run(CASES["duplicate"])
    got = stream.report(None, True)
    assert (got.packets, got.expected, got.lost, got.duplicates, got.out_of_order) == (11, 10, -1, 1, 0)
    assert got.seq_errors == 1 and stream.problem


def test_reordering_counts_once_and_loses_nothing() -> None:
    got = _run(CASES["reorder"]).report(None, True)
    # 0 1 2 3 5 4 6 ...: the jump to 5 and the late 4 are two Wireshark sequence errors.
    assert (got.lost, got.duplicates, got.out_of_order, got.seq_errors) == (0, 0, 1, 2)


def test_random_loss_30_percent_has_burst_ratio_near_one() -> None:
    packets = CASES["random30"]
    got = _run(packets).report(None, True)
    assert got.expected == 1000 and got.lost == 1000 - len(packets)
    assert 0.25 < got.lost / got.expected < 0.35
    assert 0.8 < got.burst_ratio < 1.25  # G.107 3.6: random loss gives BurstR = 1


def test_bursts_of_five_give_burst_ratio_by_hand() -> None:
    got = _run(CASES["bursts"]).report(None, True)
    # 20 bursts of 5 in 1000: p = 0.1, mean burst 5, random expectation 1/(1-p): BurstR = 5 * 0.9.
    assert (got.expected, got.lost) == (1000, 100)
    assert got.burst_ratio == pytest.approx(4.5)


def test_jitter_one_late_packet_rfc3550_a8() -> None:
    got = _run(CASES["late10ms"]).report(None, True)
    # D = 10 ms then 10 ms again: J = 10/16 = 0.625, then 0.625*15/16 + 10/16 = 1.2109375 (RFC 3550 A.8).
    assert got.max_jitter_ms == pytest.approx(1.2109375, abs=1e-4)
    assert got.max_delta_ms == pytest.approx(30.0, abs=1e-3)
    assert got.min_delta_ms == pytest.approx(10.0, abs=1e-3)


@requires_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("name", sorted(CASES))
def test_crafted_streams_agree_with_tshark(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.pcap"
    _write_pcap(path, CASES[name])
    want = rtp_streams(path, heuristic=True)[(SRC, SPORT, DST, DPORT, SSRC)]
    stream = _run(CASES[name])
    got = stream.report(None, True)
    assert (got.packets, got.lost, stream.problem) == (want.packets, want.lost, want.problem)
    for mine, theirs in [
        (got.min_delta_ms, want.min_delta_ms),
        (got.mean_delta_ms, want.mean_delta_ms),
        (got.max_delta_ms, want.max_delta_ms),
        (got.mean_jitter_ms, want.mean_jitter_ms),
        (got.max_jitter_ms, want.max_jitter_ms),
    ]:
        assert mine == pytest.approx(theirs, rel=0.01, abs=0.01)


def test_header_parser_csrc_extension_padding() -> None:
    csrc = struct.pack("!II", 1, 2)
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\x10\x00\x00\x00"
    body = b"x" * 20
    packet = (
        struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0x80 | 96, 7, 8, 9)
        + csrc
        + ext
        + body
        + b"\x00\x00\x03"
    )
    assert parse_rtp(packet) == (96, True, 7, 8, 9, 12 + 8 + 8, 20)
    # padding longer than the payload (SRTP: the last octet is the auth tag): clipped, as tshark does
    assert parse_rtp(packet[:-3] + b"\x00\x00\xff") == (96, True, 7, 8, 9, 28, 0)
    assert parse_rtp(packet[:-3] + b"\x00\x00\x00") is None  # zero padding count: tshark does not count it
    assert parse_rtp(b"\x40" + packet[1:]) is None  # version 1
    assert parse_rtp(packet[:14]) is None  # CSRC list cut
    assert looks_like_rtp(packet)
    rtcp_rr = struct.pack("!BBHI", 0x81, 201, 7, 1) + b"\x00" * 24
    assert not looks_like_rtp(rtcp_rr)


def test_garbage_never_raises() -> None:
    rng = random.Random(7)
    stream = RtpStream(SRC, SPORT, DST, DPORT, SSRC, 1, {96: "bogus", 97: "opus/0"})
    for i in range(2000):
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
        header = parse_rtp(blob)
        looks_like_rtp(blob)
        if header is not None:
            pt, marker, seq, ts, _ssrc, off, length = header
            stream.add(T0 + rng.random() * 10, i, seq, ts, pt, marker, length, blob[off : off + length])
    stream.report("x", True)


def test_report_after_a_remap_before_the_next_packet() -> None:
    """A re-INVITE re-maps the payload types, then the stream ends before another packet came.

    use_rtpmap() empties the per-payload-type cache; codec() then looked up a
    payload type seen only before the re-map and raised KeyError in the final
    report (found by fuzzing sipnab's register-invite-reinvite-bye capture).
    """
    stream = RtpStream(SRC, SPORT, DST, DPORT, SSRC, 1, {0: "PCMU/8000", 101: "telephone-event/8000"})
    for frame, (ts, seq, rtp_ts, marker) in enumerate(_regular(10), 1):
        stream.add(ts, frame, seq, rtp_ts, 0, marker, 160, None)
    stream.add(T0 + 0.3, 11, 1010, 1600, 101, False, 4, bytes([1, 0, 0, 160]))
    assert stream.report(None, final=False).codec == "PCMU"
    stream.use_rtpmap({0: "PCMU/8000", 96: "telephone-event/8000"})
    final = stream.report(None, final=True)
    assert (final.codec, final.packets, final.payload_types) == ("PCMU", 11, [0, 101])
