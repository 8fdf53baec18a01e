"""The media fast path must agree with the full decoder whenever it answers at all."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.decode.fast_path import (
    RTP_HEAD_BYTES,
    flow_key_of,
    ip_offsets,
    ipv4_udp_rtp,
    udp_flow_key,
    udp_payload,
)
from callqual.collector.decode.frame_decoder import FrameDecoder
from tests.collector.pcapcraft import ether, frame, ipv4, ipv6, udp
from tests.tshark_reference import PCAPS

RTP = b"\x80\x00\x00\x01" + b"\0" * 8 + b"\xd5" * 160


def test_key_and_offset_for_plain_and_tagged_frames() -> None:
    for vlans, off in (((), 42), ((7,), 46)):
        data = ether(ipv4("192.0.2.10", "198.51.100.20", 17, udp(16384, 20000, RTP)), vlans=vlans)
        got = udp_flow_key(1, data)
        assert got == (flow_key_of("192.0.2.10", 16384, "198.51.100.20", 20000), off)
        assert data[off:] == RTP


@pytest.mark.parametrize(
    ("linktype", "data"),
    [
        (113, b"\0" * 16 + ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 2, RTP))),  # not Ethernet
        (1, ether(ipv4("1.1.1.1", "2.2.2.2", 6, b"\0" * 20))),  # TCP
        (1, ether(ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 2, RTP), flags_frag=0x2000))),  # first fragment
        (1, ether(ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 2, RTP), flags_frag=0x0010))),  # later fragment
        (1, ether(ipv6("::1", "::2", 17, udp(1, 2, RTP)), ethertype=0x86DD)),  # IPv6
        (1, ether(ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 2, RTP)), vlans=(1, 2))),  # QinQ
        (1, ether(ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 2, b"\x80")) + b"\0" * 20)),  # padded
        (1, ether(ipv4("1.1.1.1", "2.2.2.2", 17, udp(1, 2, RTP)))[:30]),  # cut short
        (1, b""),
    ],
)
def test_declines_everything_unusual(linktype: int, data: bytes) -> None:
    assert udp_flow_key(linktype, data) is None


def test_ip_options_are_declined() -> None:
    pkt = bytearray(ipv4("1.1.1.1", "2.2.2.2", 17, b"\x01\x01\x01\x00" + udp(1, 2, RTP)))
    pkt[0] = 0x46
    assert udp_flow_key(1, ether(bytes(pkt))) is None


def test_flow_key_of_rejects_ipv6_and_garbage() -> None:
    assert flow_key_of("2001:db8::1", 1, "2001:db8::2", 2) is None
    assert flow_key_of("1.2.3", 1, "1.2.3.4", 2) is None
    assert flow_key_of("1.2.3.4", 70000, "1.2.3.4", 2) is None
    assert flow_key_of("10.0.0.1", 0x1234, "10.0.0.2", 0x5678) == bytes(
        [10, 0, 0, 1, 10, 0, 0, 2, 0x12, 0x34, 0x56, 0x78]
    )


@pytest.mark.parametrize(
    "name", ["heplify/rtp_rtcp_sip_ipv4_udp.pcap", "rtp-pcap/SIP_DTMF2.pcap", "sipp/g711a.pcap"]
)
def test_agrees_with_the_full_decoder_on_real_media(name: str) -> None:
    dec = FrameDecoder()
    hits = 0
    with open_capture(PCAPS / name) as cap:
        for fr in cap:
            fast = udp_flow_key(fr.linktype, fr.data)
            full = [p for p in dec.decode(fr) if p.transport == "udp"]
            if fast is None:
                continue
            hits += 1
            (p,) = full
            key, off = fast
            assert key == flow_key_of(p.src_ip, p.src_port, p.dst_ip, p.dst_port)
            assert fr.data[off:] == p.data
    assert hits > 200


def test_per_call_cost() -> None:
    data = ether(ipv4("192.0.2.10", "198.51.100.20", 17, udp(16384, 20000, RTP)))
    n = 200_000
    start = time.perf_counter()
    for _ in range(n):
        udp_flow_key(1, data)
    per_call_ns = (time.perf_counter() - start) / n * 1e9
    # ~0.5 us on an idle core; the bound only catches an accidental slow path.
    assert per_call_ns < 5000


def _sll(ip: bytes, proto: bytes = b"\x08\x00") -> bytes:
    return b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 6 + b"\x00\x00" + proto + ip


def _sll2(ip: bytes, proto: bytes = b"\x08\x00") -> bytes:
    return proto + b"\x00\x00" + b"\x00\x00\x00\x02\x00\x01\x00\x06" + b"\x02" * 6 + b"\x00\x00" + ip


@pytest.mark.parametrize(
    ("linktype", "wrap", "offset"),
    [
        (1, ether, 14),
        (1, lambda ip: ether(ip, vlans=(42,)), 18),
        (113, _sll, 16),
        (276, _sll2, 20),
        (101, lambda ip: ip, 0),
        (228, lambda ip: ip, 0),
        (0, lambda ip: b"\x02\x00\x00\x00" + ip, 4),
        (0, lambda ip: b"\x00\x00\x00\x02" + ip, 4),
        (108, lambda ip: b"\x00\x00\x00\x02" + ip, 4),
    ],
)
def test_every_fixed_offset_link_layer_and_its_vectorised_twin(linktype: int, wrap: Any, offset: int) -> None:
    """udp_flow_key() and the chunk loop's ip_offsets()/ipv4_udp_rtp() agree with the full decoder."""
    good = wrap(ipv4("192.0.2.10", "198.51.100.20", 17, udp(16384, 20000, RTP)))
    frames = [
        good,
        good[:-1],  # cut short: IP length no longer matches
        wrap(ipv4("192.0.2.10", "198.51.100.20", 6, b"\0" * 40)),  # TCP
        wrap(ipv4("192.0.2.10", "198.51.100.20", 17, udp(1, 2, b"\x90" + RTP[1:]))),  # RTP extension
        good[: offset + 10],  # cut inside the IP header
        good,
    ]
    (payload,) = FrameDecoder().decode(frame(good, linktype))
    assert udp_flow_key(linktype, good) == (
        flow_key_of(payload.src_ip, payload.src_port, payload.dst_ip, payload.dst_port),
        offset + 28,
    )
    assert good[offset + 28 :] == payload.data == RTP
    buf = b"".join(frames)
    start = np.cumsum([0, *map(len, frames[:-1])])
    caplen = np.array([len(f) for f in frames])
    at = ip_offsets(linktype, np.frombuffer(buf, np.uint8), start, caplen)
    heads = np.zeros((len(frames), RTP_HEAD_BYTES), np.uint8)
    for i, f in enumerate(frames):
        if at[i] >= 0:  # the row the chunk loop reads: IPv4 header at column 14
            row = (b"\0" * 14 + f)[at[i] : at[i] + RTP_HEAD_BYTES]
            heads[i, : len(row)] = np.frombuffer(row, np.uint8)
    fast = ipv4_udp_rtp(heads, caplen - at) & (at >= 0)
    scalar = [
        (key := udp_flow_key(linktype, f)) is not None and f[key[1]] == 0x80 and len(f) - key[1] >= 12
        for f in frames
    ]
    assert fast.tolist() == scalar == [True, False, False, False, False, True]


def _all_shared_captures() -> list[str]:
    captures = (p for p in PCAPS.glob("*/*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    return sorted(str(p.relative_to(PCAPS)) for p in captures)


def test_udp_payload_is_the_decoders_datagram_in_every_shared_capture() -> None:
    """Signalling skips the decoder's layer walk (Collector.feed): it must give the very same datagram."""
    names = _all_shared_captures()
    assert len(names) > 30
    quick_hits = declined = 0
    for name in names:
        dec = FrameDecoder()
        with open_capture(PCAPS / name) as cap:
            for fr in cap:
                fast = udp_flow_key(fr.linktype, fr.data)
                full = dec.decode(fr)
                if fast is None:
                    continue
                quick = udp_payload(fr, *fast)
                if quick is None:
                    declined += 1
                    assert full == [], name  # what the decoder counts as an error or skipped
                else:
                    quick_hits += 1
                    assert full == [quick], (name, fr.number)
    assert quick_hits > 10_000


@pytest.mark.parametrize(
    ("udp_length", "expected"),
    [(8 + 4, b"INVI"), (8, None), (7, None), (8 + 200, None)],
)
def test_udp_payload_follows_the_udp_length(udp_length: int, expected: bytes | None) -> None:
    """The UDP length, not the IP length, ends the datagram; lengths the decoder counts are declined."""
    body = bytearray(udp(5060, 5060, b"INVITE sip:x SIP/2.0\r\n\r\n"))
    body[4:6] = udp_length.to_bytes(2, "big")
    fr = frame(ether(ipv4("192.0.2.1", "192.0.2.2", 17, bytes(body))))
    fast = udp_flow_key(fr.linktype, fr.data)
    assert fast is not None
    got = udp_payload(fr, *fast)
    full = FrameDecoder().decode(fr)
    assert (got.data if got is not None else None) == expected
    assert full == ([got] if got is not None else [])
