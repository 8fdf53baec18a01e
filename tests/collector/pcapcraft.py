"""Building frames and capture files byte by byte for the decoder tests.

Crafted with struct rather than a packet library so each test states
exactly which bytes are on the wire (including the broken ones).
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from callqual.collector.packet import Frame

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, ident: int = 1, flags_frag: int = 0) -> bytes:
    total = 20 + len(payload)
    return (
        struct.pack("!BBHHHBBH", 0x45, 0, total, ident, flags_frag, 64, proto, 0)
        + socket.inet_aton(src)
        + socket.inet_aton(dst)
        + payload
    )


def ipv6(src: str, dst: str, nh: int, payload: bytes) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), nh, 64)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + payload
    )


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, seq: int, flags: int, payload: bytes = b"", *, ack: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def ether(payload: bytes, ethertype: int = 0x0800, vlans: tuple[int, ...] = ()) -> bytes:
    """Ethernet II; with several VLAN ids the outer tag is 802.1ad (QinQ), the others 802.1Q."""
    hdr = MAC_B + MAC_A
    tpids = [0x88A8] * (len(vlans) > 1) + [0x8100] * (len(vlans) - (len(vlans) > 1))
    for tpid, vid in zip(tpids, vlans, strict=True):
        hdr += struct.pack("!HH", tpid, vid)
    return hdr + struct.pack("!H", ethertype) + payload


def frame(data: bytes, linktype: int = 1, number: int = 1, ts: float = 1000.0) -> Frame:
    return Frame(number, ts, linktype, data, len(data))


def write_pcap(
    path: Path, packets: list[tuple[float, bytes]], linktype: int = 1, nanos: bool = False, order: str = "<"
) -> Path:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for ts, data in packets:
        sec = int(ts)
        sub = round((ts - sec) * (1e9 if nanos else 1e6))
        out.append(struct.pack(order + "IIII", sec, sub, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng_shb() -> bytes:
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def pcapng_idb(linktype: int, tsresol: int | None = None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += struct.pack("<HHB3x", 9, 1, tsresol)
    opts += struct.pack("<HH", 0, 0)
    return _block(1, struct.pack("<HHI", linktype, 0, 0) + opts)


def pcapng_epb(iface: int, ticks: int, data: bytes) -> bytes:
    head = struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
    return _block(6, head + data)


def pcapng_spb(data: bytes) -> bytes:
    return _block(3, struct.pack("<I", len(data)) + data)
