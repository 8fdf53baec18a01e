"""The numpy chunk path of Collector.run must give exactly what feeding frame by frame gives.

The chunk loop (chunk_path.feed_chunk) reorders work (fast rows wait, are handed over in
bulk, look-ups are redone only when tables change) and is what ``callqual analyze``
runs on every capture file, pcap and pcapng; the per-frame loop is what sources
without record_batches() (and paced replays) run.
Every event must come out the same, in the same order, on real and simulated captures,
floats to rounding (the vectorised statistics sum in another order).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.collector.packet import Frame
from callqual.schemas import AnyEvent, RtpStreamReport
from callqual.simulator import simulate
from tests.collector.event_equality import assert_same
from tests.collector.pcapcraft import ether, ipv4, pcapng_epb, pcapng_idb, pcapng_shb, udp, write_pcap
from tests.shared_captures import PCAPS

#: every shared capture, classic pcap and pcapng (some .pcap files are pcapng inside)
CAPTURES = sorted(p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng"))


def _events(path: Path, chunked: bool, heuristic: bool) -> tuple[list[dict[str, Any]], Collector]:
    out: list[AnyEvent] = []
    collector = Collector(out.append, CollectorConfig(heuristic_rtp=heuristic))
    with open_capture(path) as capture:
        if chunked:
            collector.run(capture)
        else:
            frames: Iterator[Frame] = iter(capture)  # no record_batches(): the per-frame loop
            collector.run(frames)
    collector.finish()
    return [e.model_dump() for e in out], collector


def _check(path: Path, heuristic: bool) -> int:
    chunked, c1 = _events(path, True, heuristic)
    framed, c2 = _events(path, False, heuristic)
    assert len(chunked) == len(framed)
    for i, (a, b) in enumerate(zip(chunked, framed, strict=True)):
        assert_same(a, b, f"event {i} ({a.get('kind', '?')})")
    assert (c1.frames, c1.bytes) == (c2.frames, c2.bytes)
    assert (c1.all_errors(), c1.all_skipped(), c1.all_dropped()) == (
        c2.all_errors(),
        c2.all_skipped(),
        c2.all_dropped(),
    )
    return len(chunked)


def test_the_shared_captures_include_pcapng() -> None:
    assert sum(p.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a" for p in CAPTURES) >= 3


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("heuristic", [False, True], ids=["sdp", "heuristic"])
def test_shared_captures(path: Path, heuristic: bool) -> None:
    _check(path, heuristic)


@pytest.mark.parametrize(("scenario", "options"), [("demo", {}), ("impaired", {"duration": 20.0})])
def test_simulated_captures(tmp_path: Path, scenario: str, options: dict[str, object]) -> None:
    path = tmp_path / f"{scenario}.pcap"
    simulate(scenario, path, seed=5, **options)
    assert _check(path, False) > 100


def _as_pcapng(src: Path, dst: Path) -> Path:
    """The frames of ``src`` as pcapng: frames whose number is a multiple of 3 on a second
    Ethernet interface with nanosecond timestamps, the others on one with microseconds."""
    with open_capture(src) as capture:
        frames = list(capture)
    blocks = [pcapng_shb(), pcapng_idb(1), pcapng_idb(1, tsresol=9)]
    for f in frames:
        ns = f.number % 3 == 0
        blocks.append(pcapng_epb(int(ns), round(f.ts * (1e9 if ns else 1e6)), f.data))
    dst.write_bytes(b"".join(blocks))
    return dst


@pytest.mark.parametrize(("scenario", "options"), [("demo", {}), ("impaired", {"duration": 20.0})])
def test_simulated_captures_as_pcapng(tmp_path: Path, scenario: str, options: dict[str, object]) -> None:
    simulate(scenario, tmp_path / f"{scenario}.pcap", seed=5, **options)
    assert _check(_as_pcapng(tmp_path / f"{scenario}.pcap", tmp_path / f"{scenario}.pcapng"), False) > 100


def _invite(call_id: str, media_ip: str, media_port: int) -> bytes:
    sdp = (
        f"v=0\r\no=- 1 1 IN IP4 {media_ip}\r\ns=-\r\nc=IN IP4 {media_ip}\r\nt=0 0\r\n"
        f"m=audio {media_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    ).encode()
    head = (
        f"INVITE sip:bob@{media_ip} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:alice@10.0.0.9>;tag=a{call_id}\r\nTo: <sip:bob@{media_ip}>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    ).encode()
    return ether(ipv4("10.0.0.9", media_ip, 17, udp(5060, 5060, head + sdp)))


def _rtp(src: tuple[str, int], dst: tuple[str, int], ssrc: int, seq: int) -> bytes:
    header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrc)
    return ether(ipv4(src[0], dst[0], 17, udp(src[1], dst[1], header + bytes(160))))


@pytest.mark.parametrize("new_ssrc", [7, 1], ids=["new-ssrc", "same-ssrc"])
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "per-frame"])
def test_a_new_sdp_rebinds_only_its_own_endpoints(tmp_path: Path, new_ssrc: int, chunked: bool) -> None:
    """Port reuse: call B's SDP takes over call A's media endpoint; an unrelated call C goes on.

    From B's SDP on, the packets to that endpoint are B's (as Wireshark ties them), while C's
    stream, which no SDP touched, stays one stream of C with every packet.
    """
    t0 = 1_700_000_000.0
    packets: list[tuple[float, bytes]] = [
        (t0, _invite("A", "10.0.0.1", 4000)),
        (t0 + 0.001, _invite("C", "10.0.0.3", 6000)),
    ]
    for i in range(300):
        t = t0 + 0.01 + i * 0.02
        if i == 150:
            packets.append((t - 0.005, _invite("B", "10.0.0.1", 4000)))
        ssrc = 1 if i < 150 else new_ssrc
        packets.append((t, _rtp(("10.0.0.2", 5000), ("10.0.0.1", 4000), ssrc, 1000 + i)))
        packets.append((t + 0.001, _rtp(("10.0.0.4", 7000), ("10.0.0.3", 6000), 9, 50 + i)))
    path = write_pcap(tmp_path / "rebind.pcap", packets)
    out: list[AnyEvent] = []
    collector = Collector(out.append)
    with open_capture(path) as capture:
        collector.run(capture if chunked else iter(capture))
    collector.finish()
    final = {(e.call_id, e.ssrc): e.packets for e in out if isinstance(e, RtpStreamReport) and e.final}
    assert final == {("A", 1): 150, ("B", new_ssrc): 150, ("C", 9): 300}


def _relink(data: bytes, linktype: int) -> bytes:
    """An untagged Ethernet/IPv4 frame re-encapsulated in another link layer (other frames unchanged)."""
    ethertype, ip = data[12:14], data[14:]
    if linktype == 1:  # one 802.1Q tag, VLAN 42
        return data[:12] + b"\x81\x00\x00\x2a" + data[12:]
    if linktype == 113:  # Linux SLL: packet type, ARPHRD, address length, 8 address bytes, protocol
        return b"\x00\x00\x00\x01\x00\x06" + data[6:12] + b"\x00\x00" + ethertype + ip
    if linktype == 276:  # Linux SLL2: protocol, reserved, ifindex, ARPHRD, packet type, address
        return ethertype + b"\x00\x00\x00\x00\x00\x02\x00\x01\x00\x06" + data[6:12] + b"\x00\x00" + ip
    if linktype == 101:  # raw IP
        return ip
    if linktype == 0:  # BSD loopback, family in the capturing host's order (big-endian here)
        return (b"\x00\x00\x00\x02" if ethertype == b"\x08\x00" else b"\x00\x00\x00\x1e") + ip
    raise AssertionError(linktype)


@pytest.mark.parametrize("linktype", [1, 113, 276, 101, 0], ids=["vlan", "sll", "sll2", "raw", "null"])
def test_every_fixed_offset_link_layer_gives_the_same_events(tmp_path: Path, linktype: int) -> None:
    """The demo capture re-encapsulated (802.1Q, `tcpdump -i any` SLL/SLL2, raw IP, loopback):
    the chunk loop takes the same fast path and every event equals the plain Ethernet run's."""
    plain = tmp_path / "plain.pcap"
    simulate("demo", plain, seed=5)
    with open_capture(plain) as capture:
        frames = [(f.ts, f.data) for f in capture]
    assert all(data[12:14] in (b"\x08\x00", b"\x86\xdd") for _, data in frames)
    other = write_pcap(tmp_path / "other.pcap", [(ts, _relink(d, linktype)) for ts, d in frames], linktype)
    reference, _ = _events(plain, True, False)
    chunked, collector = _events(other, True, False)
    assert len(chunked) == len(reference) > 100
    for i, (a, b) in enumerate(zip(chunked, reference, strict=True)):
        assert_same(a, b, f"event {i}")
    assert not collector.all_errors()
    _check(other, False)
