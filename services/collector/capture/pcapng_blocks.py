"""pcapng's blocks, options and timestamps: what both pcapng readers decode the same way.

The frame reader and the batch reader walk blocks differently (one Frame per
packet, or offsets gathered for numpy), but a section's byte order, an
interface's link type and timestamp resolution, and the conversion of a
timestamp to seconds must agree bit for bit between them, so they are
defined once, here.
"""

from __future__ import annotations

import struct

__all__ = [
    "BT_EPB",
    "BT_IDB",
    "BT_PB",
    "BT_SPB",
    "SHB_MAGIC",
    "SHB_TYPE",
    "UNUSABLE_INTERFACE",
    "Interface",
    "epb_seconds",
    "epb_timestamp",
    "interface_block",
    "section_byte_order",
    "spb_caplen",
    "ticks_per_second",
]

SHB_MAGIC = b"\x0a\x0d\x0d\x0a"  #: a Section Header Block's type, which reads the same in both byte orders
SHB_TYPE = 0x0A0D0D0A
BT_IDB = 1
BT_PB = 2  # obsolete Packet Block; Wireshark still reads it, so do we
BT_SPB = 3
BT_EPB = 6
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14
_BYTE_ORDERS = ("<", ">")

#: One Interface Description Block: (link type, seconds per tick, timestamp offset in seconds, snaplen).
#: A plain tuple, not a NamedTuple: the frame reader unpacks one per packet, and tuple
#: unpacking has a fast path that tuple subclasses do not take.
Interface = tuple[int, float, int, int]
#: Stands in for an interface block too short to read, so that later interface ids stay aligned.
UNUSABLE_INTERFACE: Interface = (-1, 1e-6, 0, 0)


def section_byte_order(buf: bytes, pos: int) -> str | None:
    """The byte order ('<' or '>') of the section whose header is at ``pos``; None if its magic is wrong."""
    for order in _BYTE_ORDERS:
        if struct.unpack_from(order + "I", buf, pos + 8)[0] == _BYTE_ORDER_MAGIC:
            return order
    return None


def interface_block(order: str, buf: bytes, pos: int, blen: int) -> Interface | None:
    """The interface the IDB of ``blen`` bytes at ``pos`` describes; None if too short to hold one."""
    if blen < 20:
        return None
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, pos + 8)
    tick, ts_offset = _interface_options(order, buf, pos + 16, pos + blen - 4)
    return linktype, tick, ts_offset, snaplen


def _interface_options(order: str, buf: bytes, pos: int, end: int) -> tuple[float, int]:
    """if_tsresol and if_tsoffset from the options between ``pos`` and ``end``; defaults µs and 0."""
    tick = 1e-6
    ts_offset = 0
    while pos + 4 <= end:
        code, olen = struct.unpack_from(order + "HH", buf, pos)
        pos += 4
        if code == 0 or pos + olen > end:
            break
        if code == _OPT_IF_TSRESOL and olen >= 1:
            v = buf[pos]
            tick = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
        elif code == _OPT_IF_TSOFFSET and olen >= 8:
            (ts_offset,) = struct.unpack_from(order + "q", buf, pos)
        pos += (olen + 3) & ~3
    return tick, ts_offset


def spb_caplen(origlen: int, blen: int, snaplen: int) -> int:
    """A Simple Packet Block's captured length: it has no field for it, so the block and snaplen bound it."""
    caplen = min(origlen, blen - 16)
    if snaplen:
        caplen = min(caplen, snaplen)
    return max(caplen, 0)  # a block too short for its length field: no data


def epb_timestamp(order: str, buf: bytes, at: int, ifaces: list[Interface]) -> float:
    """The timestamp of the EPB at ``at`` in seconds, as the frame reader computes it."""
    ifid, ts_hi, ts_lo = struct.unpack_from(order + "III", buf, at + 8)
    _linktype, tick, offset, _snap = ifaces[ifid]
    return epb_seconds((ts_hi << 32) | ts_lo, tick, offset)


def ticks_per_second(tick: float) -> int:
    """The whole number of ticks in a second (if_tsresol is 10^-n or 2^-n, so 1/tick is exact)."""
    return max(1, round(1 / tick))


def epb_seconds(ticks: int, tick: float, offset: int) -> float:
    """An EPB timestamp as classic pcap computes one: whole seconds, plus the fraction times the unit.

    ``ticks * tick`` in one product rounds differently (often a double's step, 0.24 µs, off at
    today's epoch), so a capture converted with ``editcap -F pcapng`` gave other
    jitter figures than the original; seconds + fraction gives the same doubles.
    """
    sec, frac = divmod(ticks, ticks_per_second(tick))
    return float(offset + sec) + frac * tick
