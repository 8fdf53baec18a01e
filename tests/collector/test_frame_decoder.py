"""FrameDecoder: SIP found in the shared captures equals tshark's, plus crafted layers and bad input."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.decode.frame_decoder import FrameDecoder
from callqual.collector.decode.sip_framing import is_sip_start
from callqual.collector.packet import Payload
from tests.collector.pcapcraft import ether, frame, ipv4, ipv6, udp
from tests.tshark_reference import PCAPS, fields

SIP = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"


def decode_capture(path: Path, decoder: FrameDecoder | None = None) -> tuple[FrameDecoder, list[Payload]]:
    dec = decoder or FrameDecoder()
    out: list[Payload] = []
    with open_capture(path) as cap:
        for fr in cap:
            out.extend(dec.decode(fr))
    return dec, out


# Captures whose SIP needs more than plain UDP: TCP (with retransmissions, mid-stream
# pickup, large bodies), WebSocket, SCTP, IPv6 fragments, IP-in-IP and ERSPAN.
REASSEMBLY_CAPTURES = [
    "heplify/sip_ipv4_tcp.pcap",
    "heplify/sip_ipv4_tcp_retrans.pcap",
    "heplify/sip_tcp_websocket.pcap",
    "heplify/sip_sctp.pcap",
    "suricata-verify/sip-tcp.pcap",
    "suricata-verify/sip-body-large.pcap",
    "sngrep/ipv6frag.pcap",
    "sngrep/ipip.pcap",
    "heplify/ipip0.pcap",
    "heplify/erspan_sip_ipv4_udp.pcapng",
    "heplify/sip_ipv6_udp.pcap",
    "zeek/wireshark.pcap",
]


@pytest.mark.tshark
@pytest.mark.parametrize("name", REASSEMBLY_CAPTURES)
def test_sip_messages_and_their_frames_match_tshark(name: str) -> None:
    path = PCAPS / name
    rows = fields(path, "sip", ["frame.number", "sip.Call-ID"])
    # tshark prints one row per frame; several messages in one frame would show as several Call-IDs.
    expected = [int(r[0]) for r in rows for _ in (r[1].split(",") if r[1] else [""])]
    dec, payloads = decode_capture(path)
    ours = [p.frame for p in payloads if is_sip_start(p.data)]
    assert ours == expected
    assert not dec.errors
    assert not dec.dropped


def test_transports_are_labelled() -> None:
    _, payloads = decode_capture(PCAPS / "heplify/sip_tcp_websocket.pcap")
    by_transport = {p.transport for p in payloads}
    assert by_transport == {"udp", "ws"}
    ws = [p for p in payloads if p.transport == "ws"]
    assert len(ws) == 11
    assert ws[0].data.startswith(b"INVITE sip:+12263382742@dev-mike.tncp.textnow.com SIP/2.0\r\n")
    assert (ws[0].src_ip, ws[0].src_port, ws[0].dst_ip, ws[0].dst_port) == (
        "10.243.17.55",
        43380,
        "10.243.0.157",
        8080,
    )
    _, sctp = decode_capture(PCAPS / "heplify/sip_sctp.pcap")
    assert [p.transport for p in sctp] == ["sctp"] * 4
    assert sctp[0].frame == 2  # the INVITE arrived in two DATA fragments, completed by frame 2


def test_tcp_message_bodies_are_complete() -> None:
    _, payloads = decode_capture(PCAPS / "suricata-verify/sip-body-large.pcap")
    invite = payloads[0]
    head, _, body = invite.data.partition(b"\r\n\r\n")
    length = next(
        int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
    )
    assert len(body) == length > 60000


def test_ipv6_fragments_are_reassembled() -> None:
    dec, payloads = decode_capture(PCAPS / "sngrep/ipv6frag.pcap")
    invite = next(p for p in payloads if p.frame == 2)
    assert len(invite.data) > 1400  # bigger than the 1512-byte first fragment's share
    assert invite.src_ip.count(":") >= 2
    assert dec.skipped["ip.fragment_queued"] == 2
    assert dec.fragment_buffers == 0


@pytest.mark.parametrize("path", sorted(PCAPS.rglob("*.pcap*")), ids=lambda p: str(p.relative_to(PCAPS)))
def test_every_shared_capture_decodes(path: Path) -> None:
    dec, payloads = decode_capture(path)
    assert dec.fragment_buffers <= 1024
    assert all(p.data for p in payloads)
    assert all(p.transport in ("udp", "tcp", "ws", "sctp") for p in payloads)


def test_fuzzed_capture_errors_are_counted_not_raised() -> None:
    dec, _ = decode_capture(PCAPS / "nDPI/fuzz-2006-06-26-2594.pcap")
    assert dec.errors["ip.truncated"] > 0
    assert sum(dec.errors.values()) > 20


# -- crafted frames -------------------------------------------------------------------------------


def _udp4(payload: bytes = SIP, src: str = "192.0.2.1", dst: str = "192.0.2.2") -> bytes:
    return ipv4(src, dst, 17, udp(5060, 5062, payload))


def test_plain_ethernet_udp() -> None:
    dec = FrameDecoder()
    (p,) = dec.decode(frame(ether(_udp4()), number=7, ts=12.5))
    assert p == Payload(7, 12.5, "192.0.2.1", 5060, "192.0.2.2", 5062, "udp", SIP)


def test_ethernet_padding_is_not_payload() -> None:
    dec = FrameDecoder()
    data = ether(_udp4(b"\x80"))
    assert len(data) < 60
    (p,) = dec.decode(frame(data + b"\0" * (60 - len(data))))
    assert p.data == b"\x80"


@pytest.mark.parametrize("vlans", [(10,), (100, 200), (1, 2, 3)])
def test_vlan_tags_any_depth(vlans: tuple[int, ...]) -> None:
    dec = FrameDecoder()
    (p,) = dec.decode(frame(ether(_udp4(), vlans=vlans)))
    assert p.data == SIP


def test_linux_cooked_v1_and_v2() -> None:
    dec = FrameDecoder()
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800) + _udp4()
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02" * 8) + _udp4()
    assert dec.decode(frame(sll, linktype=113))[0].data == SIP
    assert dec.decode(frame(sll2, linktype=276))[0].data == SIP


@pytest.mark.parametrize("linktype", [101, 12, 14, 228])
def test_raw_ipv4(linktype: int) -> None:
    assert FrameDecoder().decode(frame(_udp4(), linktype=linktype))[0].data == SIP


def test_raw_ipv6_and_linktype_229() -> None:
    pkt = ipv6("2001:db8::1", "2001:db8::2", 17, udp(5060, 5060, SIP))
    for lt in (101, 229):
        (p,) = FrameDecoder().decode(frame(pkt, linktype=lt))
        assert (p.src_ip, p.dst_ip, p.data) == ("2001:db8::1", "2001:db8::2", SIP)


@pytest.mark.parametrize(
    ("linktype", "header"),
    [
        (0, struct.pack("<I", 2)),  # NULL written by a little-endian host
        (0, struct.pack(">I", 2)),  # NULL written by a big-endian host
        (108, struct.pack(">I", 2)),  # OpenBSD LOOP: always network order
    ],
)
def test_bsd_loopback(linktype: int, header: bytes) -> None:
    assert FrameDecoder().decode(frame(header + _udp4(), linktype=linktype))[0].data == SIP


def test_bsd_loopback_ipv6_families() -> None:
    pkt = ipv6("::1", "::1", 17, udp(5060, 5060, SIP))
    for family in (24, 28, 30):
        assert FrameDecoder().decode(frame(struct.pack("<I", family) + pkt, linktype=0))[0].data == SIP


def test_unknown_link_type_is_a_counted_skip() -> None:
    dec = FrameDecoder()
    assert dec.decode(frame(_udp4(), linktype=147)) == []
    assert dec.skipped == {"link.unsupported_linktype": 1}
    assert not dec.errors


def test_packet_cut_mid_header_is_a_counted_error() -> None:
    dec = FrameDecoder()
    whole = ether(_udp4())
    for cut in (10, 14 + 12, 14 + 20 + 4, 14 + 20 + 8 + 5):
        assert dec.decode(frame(whole[:cut])) == []
    assert dec.errors == {"link.truncated": 1, "ip.truncated": 3}


def test_udp_length_larger_than_datagram() -> None:
    dec = FrameDecoder()
    bad = bytearray(_udp4())
    bad[20 + 4 : 20 + 6] = struct.pack("!H", 4000)
    assert dec.decode(frame(ether(bytes(bad)))) == []
    bad[20 + 4 : 20 + 6] = struct.pack("!H", 3)
    assert dec.decode(frame(ether(bytes(bad)))) == []
    assert dec.errors == {"udp.truncated": 1, "udp.bad_length": 1}


def test_zero_length_udp_is_a_skip_not_an_error() -> None:
    dec = FrameDecoder()
    assert dec.decode(frame(ether(_udp4(b"")))) == []
    assert dec.skipped == {"udp.empty": 1}
    assert not dec.errors


def test_non_ip_and_non_udp_tcp_are_skips() -> None:
    dec = FrameDecoder()
    dec.decode(frame(ether(b"\0" * 28, ethertype=0x0806)))  # ARP
    dec.decode(frame(ether(ipv4("10.0.0.1", "10.0.0.2", 1, b"\x08\0\0\0\0\0\0\0"))))  # ICMP
    dec.decode(frame(ether(b"\xaa\xaa\x03" + b"\0" * 40, ethertype=46)))  # 802.3 + LLC
    assert dec.skipped == {"link.non_ip": 1, "ip.non_udp_tcp": 1, "link.llc": 1}


def test_ipv6_extension_headers_are_skipped() -> None:
    dg = udp(5060, 5060, SIP)
    dest_opts = bytes([17, 0]) + b"\x01\x04\0\0\0\0"  # next=UDP, 8 bytes, PadN
    hop_by_hop = bytes([60, 0]) + b"\x01\x04\0\0\0\0"  # next=destination options
    pkt = ipv6("2001:db8::1", "2001:db8::2", 0, hop_by_hop + dest_opts + dg)
    (p,) = FrameDecoder().decode(frame(ether(pkt, ethertype=0x86DD)))
    assert p.data == SIP


def _v4_fragments(payload: bytes, size: int, ident: int = 7) -> list[bytes]:
    out = []
    for off in range(0, len(payload), size):
        more = off + size < len(payload)
        piece = payload[off : off + size]
        out.append(
            ipv4("10.1.1.1", "10.1.1.2", 17, piece, ident=ident, flags_frag=(off // 8) | (0x2000 * more))
        )
    return out


def test_ipv4_fragments_out_of_order() -> None:
    body = SIP + b"v=0\r\n" * 600
    frags = _v4_fragments(udp(5060, 5060, body), 1480)
    assert len(frags) == 3
    dec = FrameDecoder()
    results = [
        dec.decode(frame(ether(f), number=i + 1)) for i, f in enumerate([frags[2], frags[0], frags[1]])
    ]
    assert results[0] == [] and results[1] == []
    (p,) = results[2]
    assert p.data == body
    assert p.frame == 3
    assert dec.skipped == {"ip.fragment_queued": 2}


def test_ipv4_fragment_table_is_bounded_and_times_out() -> None:
    dec = FrameDecoder(max_fragment_buffers=2, fragment_timeout=30.0)
    for ident in range(3):
        first = _v4_fragments(udp(1, 2, b"x" * 3000), 1480, ident=ident)[0]
        dec.decode(frame(ether(first), ts=100.0))
    assert dec.dropped == {"ip.fragment_evicted": 1}
    assert dec.fragment_buffers == 2
    late = _v4_fragments(udp(1, 2, b"y" * 3000), 1480, ident=99)[0]
    dec.decode(frame(ether(late), ts=200.0))
    assert dec.dropped == {"ip.fragment_evicted": 1, "ip.fragment_timeout": 2}
    assert dec.fragment_buffers == 1


def test_ip_in_ip_both_ways() -> None:
    inner4 = _udp4()
    inner6 = ipv6("2001:db8::1", "2001:db8::2", 17, udp(5060, 5060, SIP))
    dec = FrameDecoder()
    (a,) = dec.decode(frame(ether(ipv4("198.51.100.1", "198.51.100.2", 4, inner4))))
    (b,) = dec.decode(frame(ether(ipv4("198.51.100.1", "198.51.100.2", 41, inner6))))
    (c,) = dec.decode(frame(ether(ipv6("2001:db8::a", "2001:db8::b", 4, inner4), ethertype=0x86DD)))
    assert (a.src_ip, b.src_ip, c.src_ip) == ("192.0.2.1", "2001:db8::1", "192.0.2.1")


def test_tunnel_depth_is_bounded() -> None:
    pkt = _udp4()
    for _ in range(10):
        pkt = ipv4("198.51.100.1", "198.51.100.2", 4, pkt)
    dec = FrameDecoder()
    assert dec.decode(frame(ether(pkt))) == []
    assert dec.errors == {"tunnel.too_deep": 1}


def test_gre_transparent_ethernet_and_erspan() -> None:
    inner_frame = ether(_udp4(), vlans=(5,))
    gre_teb = struct.pack("!HH", 0, 0x6558) + inner_frame
    gre_ip = struct.pack("!HHI", 0x2000, 0x0800, 42) + _udp4()  # with a key
    erspan2 = struct.pack("!HHI", 0x1000, 0x88BE, 1) + b"\x10\x01\x00\x01\x00\x00\x00\x00" + inner_frame
    erspan1 = struct.pack("!HH", 0, 0x88BE) + inner_frame
    erspan3 = (
        struct.pack("!HHI", 0x1000, 0x22EB, 1)
        + b"\x20\x01\x00\x01" + b"\0" * 4 + b"\0\0\0\x01"  # O bit set: platform subheader follows
        + b"\0" * 8
        + inner_frame
    )  # fmt: skip
    dec = FrameDecoder()
    for gre in (gre_teb, gre_ip, erspan2, erspan1, erspan3):
        (p,) = dec.decode(frame(ether(ipv4("203.0.113.1", "203.0.113.2", 47, gre))))
        assert (p.src_ip, p.data) == ("192.0.2.1", SIP)
    assert not dec.errors and not dec.skipped


def test_garbage_frames_never_raise() -> None:
    dec = FrameDecoder()
    rng = random.Random(1)
    templates = [ether(_udp4()), ether(ipv4("1.1.1.1", "2.2.2.2", 47, b"\0\0\x65\x58" + ether(_udp4())))]
    for _ in range(3000):
        data = bytearray(rng.choice(templates))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = rng.randint(0, len(data))
        dec.decode(frame(bytes(data[:cut]), linktype=rng.choice([1, 1, 1, 0, 113, 101])))
    assert sum(dec.errors.values()) + sum(dec.skipped.values()) > 0
