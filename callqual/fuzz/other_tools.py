"""Captures as other tools rewrite them: Wireshark's editcap/mergecap/reordercap, and crafted re-links.

Our own mutators (:mod:`~callqual.fuzz.mutators`) break frames where we know
fields sit; real captures reach us rewritten by tools we do not control. Each
mutation here turns one capture file into another, either keeping every packet
intact (a format conversion, a reorder, a dedup, another link layer: the report
must not change) or damaging it the way that tool does (random byte errors,
snap-length cuts, chopped bytes, a file cut mid-record, a wrong link type: the
report must count what it could not read). ``bench/fuzz_other_tools.py`` runs
them all over the shared captures; ``tests/robustness`` asserts them.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "INTACT",
    "Mutation",
    "damaging",
    "read_classic_pcap",
    "without_frame_numbers",
    "write_classic_pcap",
]

_LE_MICRO = b"\xd4\xc3\xb2\xa1"
_LE_NANO = b"\x4d\x3c\xb2\xa1"
_ETHERNET = 1
_LINUX_SLL = 113
_LINUX_SLL2 = 276

#: (seconds, sub-second units, original length, captured bytes)
Record = tuple[int, int, int, bytes]


@dataclass(frozen=True, slots=True)
class Mutation:
    name: str
    #: (source, destination) -> None; raises ValueError when the source does not suit it
    apply: Callable[[Path, Path], None]
    #: the file's extension afterwards ("pcapng" or "pcap")
    suffix: str = "pcap"
    #: only for Ethernet captures (the crafted re-links)
    ethernet_only: bool = False
    #: frames are split, so frame numbers differ (compare everything else)
    renumbers: bool = False
    #: what the original must go through to compare with (None: as it is)
    reference: Callable[[Path, Path], None] | None = None


_FRAME_KEYS = frozenset({"frame", "first_frame", "alert_id"})


def without_frame_numbers(value: Any) -> Any:
    """A report's calls/streams/alerts without frame numbers (nor alert ids, made of them): ``renumbers``."""
    if isinstance(value, dict):
        return {k: without_frame_numbers(v) for k, v in value.items() if k not in _FRAME_KEYS}
    if isinstance(value, list):
        return [without_frame_numbers(v) for v in value]
    return value


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _editcap(*options: str) -> Callable[[Path, Path], None]:
    def apply(src: Path, dst: Path) -> None:
        _run("editcap", *options, str(src), str(dst))

    return apply


def _reorder(src: Path, dst: Path) -> None:
    _run("reordercap", str(src), str(dst))


#: editcap -D's look-back in packets: wide, since mergecap interleaves packets of one timestamp
#: as P Q R P' Q' R' (a window of 2 misses P')
_DEDUP_WINDOW = "1000"


def _dedup_doubled(src: Path, dst: Path) -> None:
    """Every packet twice (mergecap of the file with itself), then ``editcap -D`` takes the copies out.

    Compared with the original deduplicated alike: some captures hold identical frames
    of their own (a LAN card's duplicates), which editcap rightly removes too.
    """
    doubled = dst.with_name(dst.name + ".doubled.pcapng")
    _run("mergecap", "-w", str(doubled), str(src), str(src))
    try:
        _run("editcap", "-D", _DEDUP_WINDOW, str(doubled), str(dst))
    finally:
        doubled.unlink(missing_ok=True)


def _cut_at(fraction: float) -> Callable[[Path, Path], None]:
    """The file cut like ``head -c``: mid-record, as a capture still being written is."""

    def apply(src: Path, dst: Path) -> None:
        data = src.read_bytes()
        dst.write_bytes(data[: max(1, int(len(data) * fraction))])

    return apply


def _merged_with(other: Path) -> Callable[[Path, Path], None]:
    """``mergecap`` with a capture of another link type: a pcapng with two interfaces."""

    def apply(src: Path, dst: Path) -> None:
        _run("mergecap", "-w", str(dst), str(src), str(other))

    return apply


def read_classic_pcap(path: Path) -> tuple[int, bool, int, list[Record]]:
    """(link type, nanosecond resolution, snaplen, records); pcapng is converted by editcap first."""
    data = path.read_bytes()
    if data[:4] not in (_LE_MICRO, _LE_NANO):
        converted = path.with_name(path.name + ".pcap")
        try:
            _run("editcap", "-F", "pcap", str(path), str(converted))
            data = converted.read_bytes()
        finally:
            converted.unlink(missing_ok=True)
    if data[:4] not in (_LE_MICRO, _LE_NANO):
        raise ValueError(f"{path}: not a little-endian classic pcap")
    snaplen, linktype = struct.unpack_from("<II", data, 16)
    pos, records = 24, []
    while pos + 16 <= len(data):
        sec, sub, caplen, orig = struct.unpack_from("<IIII", data, pos)
        records.append((sec, sub, orig, data[pos + 16 : pos + 16 + caplen]))
        pos += 16 + caplen
    return linktype, data[:4] == _LE_NANO, snaplen, records


def write_classic_pcap(
    path: Path, linktype: int, nanos: bool, snaplen: int, records: list[Record], *, order: str = "<"
) -> None:
    out = [struct.pack(order + "IHHiIII", 0xA1B23C4D if nanos else 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    out += [struct.pack(order + "IIII", sec, sub, len(d), orig) + d for sec, sub, orig, d in records]
    path.write_bytes(b"".join(out))


def _big_endian(src: Path, dst: Path) -> None:
    """A classic pcap written by a big-endian host (SPARC, PowerPC): every header field swapped."""
    linktype, nanos, snaplen, records = read_classic_pcap(src)
    write_classic_pcap(dst, linktype, nanos, snaplen, records, order=">")


def _relink(linktype: int, header: Callable[[bytes], bytes]) -> Callable[[Path, Path], None]:
    """Each Ethernet frame's 14-byte header replaced by ``header(frame)`` (bytes kept after it)."""

    def apply(src: Path, dst: Path) -> None:
        old, nanos, snaplen, records = read_classic_pcap(src)
        if old != _ETHERNET:
            raise ValueError(f"{src}: link type {old}, not Ethernet")
        out = []
        for sec, sub, orig, data in records:
            if len(data) < 14:
                out.append((sec, sub, orig, data))
                continue
            head = header(data)
            out.append((sec, sub, orig + len(head) - 14, head + data[14:]))
        write_classic_pcap(dst, linktype, nanos, snaplen + 64, out)

    return apply


def _sll(frame: bytes) -> bytes:
    """Linux cooked capture v1 (``tcpdump -i any``): packet type, ARPHRD, address, protocol."""
    return struct.pack("!HHH", 0, 1, 6) + frame[6:12] + b"\0\0" + frame[12:14]


def _sll2(frame: bytes) -> bytes:
    """Linux cooked capture v2: protocol first, then the interface index."""
    return frame[12:14] + b"\0\0" + struct.pack("!IHBB", 3, 1, 0, 6) + frame[6:12] + b"\0\0"


def _vlan(frame: bytes) -> bytes:
    return frame[:12] + struct.pack("!HH", 0x8100, 100) + frame[12:14]


def _qinq(frame: bytes) -> bytes:
    return frame[:12] + struct.pack("!HHHH", 0x88A8, 200, 0x8100, 100) + frame[12:14]


def _fragmented(size: int, *, reverse: bool) -> Callable[[Path, Path], None]:
    """IPv4 datagrams longer than ``size`` payload bytes split into fragments (as a path MTU does).

    ``reverse``: the last fragment first, as some routers and load balancers deliver them.
    Frame numbers change (one frame becomes several); everything else must not.
    """

    def apply(src: Path, dst: Path) -> None:
        linktype, nanos, snaplen, records = read_classic_pcap(src)
        if linktype != _ETHERNET:
            raise ValueError(f"{src}: link type {linktype}, not Ethernet")
        out: list[Record] = []
        for sec, sub, orig, data in records:
            pieces = _ipv4_fragments(data, size) if orig == len(data) else None
            if pieces is None:
                out.append((sec, sub, orig, data))
                continue
            out += [(sec, sub, len(p), p) for p in (reversed(pieces) if reverse else pieces)]
        write_classic_pcap(dst, linktype, nanos, snaplen, out)

    return apply


def _ipv4_fragments(frame: bytes, size: int) -> list[bytes] | None:
    """An untagged Ethernet/IPv4 frame as fragments of ``size`` payload bytes (a multiple of 8), or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] != 0x45:
        return None
    total, _, flags_frag = struct.unpack_from("!HHH", frame, 16)
    payload = frame[34 : 14 + total]
    if flags_frag & 0x3FFF or len(payload) <= size or total != len(frame) - 14:
        return None
    pieces = []
    for at in range(0, len(payload), size):
        part = payload[at : at + size]
        more = 0x2000 if at + size < len(payload) else 0
        header = bytearray(frame[14:34])
        struct.pack_into("!H", header, 2, 20 + len(part))
        struct.pack_into("!H", header, 6, more | (at // 8))
        struct.pack_into("!H", header, 10, 0)
        struct.pack_into("!H", header, 10, _ip_checksum(bytes(header)))
        pieces.append(frame[:14] + bytes(header) + part)
    return pieces


def _ipv6_tunnel(fragment: int | None) -> Callable[[Path, Path], None]:
    """Each IPv4 packet carried in IPv6 (next header 4) behind Hop-by-Hop and Destination Options
    headers, as a 6in4-free dual-stack core or a DS-Lite tunnel carries it; with ``fragment``, the
    IPv6 packets longer than that many fragmentable bytes are sent in IPv6 fragments."""

    def apply(src: Path, dst: Path) -> None:
        linktype, nanos, snaplen, records = read_classic_pcap(src)
        if linktype != _ETHERNET:
            raise ValueError(f"{src}: link type {linktype}, not Ethernet")
        out: list[Record] = []
        for ident, (sec, sub, orig, data) in enumerate(records, 1):
            packets = _in_ipv6(data, fragment, ident) if orig == len(data) else None
            if packets is None:
                out.append((sec, sub, orig, data))
                continue
            out += [(sec, sub, len(p), p) for p in packets]
        write_classic_pcap(dst, linktype, nanos, snaplen + 64, out)

    return apply


_V6_SRC = bytes.fromhex("20010db8000000000000000000000001")
_V6_DST = bytes.fromhex("20010db8000000000000000000000002")
_PADN_6 = b"\x01\x04\x00\x00\x00\x00"  # PadN option: an 8-byte extension header with no news


def _in_ipv6(frame: bytes, fragment: int | None, ident: int) -> list[bytes] | None:
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return None
    (total,) = struct.unpack_from("!H", frame, 16)
    inner = frame[14 : 14 + total]
    if total != len(frame) - 14:
        return None
    fragmentable = bytes([4, 0]) + _PADN_6 + inner  # Destination Options, then the IPv4 packet

    def ipv6(next_header: int, payload: bytes) -> bytes:
        head = struct.pack("!IHBB", 6 << 28, len(payload), next_header, 64) + _V6_SRC + _V6_DST
        return frame[:12] + b"\x86\xdd" + head + payload

    if fragment is None or len(fragmentable) <= fragment:
        return [ipv6(0, bytes([60, 0]) + _PADN_6 + fragmentable)]
    pieces = []
    for at in range(0, len(fragmentable), fragment):
        more = 1 if at + fragment < len(fragmentable) else 0
        header = struct.pack("!BBHI", 60, 0, at | more, ident)  # offsets are multiples of 8
        pieces.append(ipv6(0, bytes([44, 0]) + _PADN_6 + header + fragmentable[at : at + fragment]))
    return pieces


def _ip_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


#: Every packet kept: the report's calls and streams must equal the original's.
INTACT = (
    Mutation("pcapng", _editcap("-F", "pcapng"), "pcapng"),
    Mutation("nsecpcap", _editcap("-F", "nsecpcap")),
    Mutation("reordercap", _reorder),
    Mutation("doubled+dedup", _dedup_doubled, "pcapng", reference=_editcap("-D", _DEDUP_WINDOW)),
    Mutation("big-endian", _big_endian),
    Mutation("sll", _relink(_LINUX_SLL, _sll), ethernet_only=True),
    Mutation("sll2", _relink(_LINUX_SLL2, _sll2), ethernet_only=True),
    Mutation("vlan", _relink(_ETHERNET, _vlan), ethernet_only=True),
    Mutation("qinq", _relink(_ETHERNET, _qinq), ethernet_only=True),
    Mutation("ipv4 fragments", _fragmented(256, reverse=False), ethernet_only=True, renumbers=True),
    Mutation("ipv4 fragments reversed", _fragmented(256, reverse=True), ethernet_only=True, renumbers=True),
    Mutation("ipv4 in ipv6 + ext headers", _ipv6_tunnel(None), ethernet_only=True),
    Mutation("ipv4 in ipv6 fragments", _ipv6_tunnel(256), ethernet_only=True, renumbers=True),
)


def damaging(other_linktype_capture: Path) -> tuple[Mutation, ...]:
    """Packets damaged as each tool does it: the report must count what it could not read."""
    return (
        Mutation("editcap -E 0.01", _editcap("-E", "0.01", "--seed", "7")),
        Mutation("editcap -E 0.1", _editcap("-E", "0.1", "--seed", "7")),
        Mutation("editcap -s 24", _editcap("-s", "24")),
        Mutation("editcap -s 38", _editcap("-s", "38")),
        Mutation("editcap -s 60", _editcap("-s", "60")),
        Mutation("editcap -s 100", _editcap("-s", "100")),
        Mutation("editcap -s 200", _editcap("-s", "200")),
        Mutation("editcap -C 4", _editcap("-C", "4")),
        Mutation("editcap -C -4", _editcap("-C", "-4")),
        Mutation("editcap -C 20:8", _editcap("-C", "20:8")),
        Mutation("editcap -T linux-sll", _editcap("-T", "linux-sll")),
        Mutation("editcap -T linux-sll2", _editcap("-T", "linux-sll2")),
        Mutation("editcap -T rawip", _editcap("-T", "rawip")),
        Mutation("head -c 50%", _cut_at(0.5)),
        Mutation("head -c 99.9%", _cut_at(0.999)),
        Mutation("mergecap +rawip", _merged_with(other_linktype_capture), "pcapng"),
    )
