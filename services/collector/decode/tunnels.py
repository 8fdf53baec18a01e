"""GRE and ERSPAN: tunnels that port mirroring uses to ship whole frames to a probe.

Only the encapsulation header is interpreted; the result says what the
inner packet is (an EtherType, or :data:`INNER_ETHERNET` for a whole frame)
so the decoder re-enters the link or network layer with it.
"""

from __future__ import annotations

from callqual.collector.decode.linklayer import SkipFrame
from callqual.collector.errors import PacketDecodeError

__all__ = ["INNER_ETHERNET", "parse_gre"]

#: Pseudo EtherType meaning "an Ethernet frame follows" (GRE's Transparent Ethernet Bridging).
INNER_ETHERNET = 0x6558
_ERSPAN_II = 0x88BE  # also type I when the GRE sequence bit is clear
_ERSPAN_III = 0x22EB

_GRE_C = 0x8000
_GRE_R = 0x4000
_GRE_K = 0x2000
_GRE_S = 0x1000


def parse_gre(data: bytes, off: int, end: int) -> tuple[int, int]:
    """Parse a GRE header (and an ERSPAN header behind it); -> (inner ethertype, inner offset)."""
    if off + 4 > end:
        raise PacketDecodeError("gre.truncated")
    flags = (data[off] << 8) | data[off + 1]
    proto = (data[off + 2] << 8) | data[off + 3]
    if flags & 0x7:
        # Version 1 is PPTP's enhanced GRE (PPP inside); nothing SIP-bearing we can reach.
        raise SkipFrame("gre.unsupported_version")
    if flags & _GRE_R:
        raise SkipFrame("gre.source_routed")  # RFC 1701 routing, deprecated and never seen carrying SIP
    off += 4
    if flags & _GRE_C:
        off += 4
    if flags & _GRE_K:
        off += 4
    if flags & _GRE_S:
        off += 4
    if off > end:
        raise PacketDecodeError("gre.truncated")
    if proto == _ERSPAN_II:
        if not flags & _GRE_S:
            return INNER_ETHERNET, off  # ERSPAN type I: no ERSPAN header at all
        if off + 8 > end:
            raise PacketDecodeError("erspan.truncated")
        return INNER_ETHERNET, off + 8
    if proto == _ERSPAN_III:
        if off + 12 > end:
            raise PacketDecodeError("erspan.truncated")
        has_subheader = data[off + 11] & 0x01  # the O bit: an 8-byte platform-specific subheader
        off += 20 if has_subheader else 12
        if off > end:
            raise PacketDecodeError("erspan.truncated")
        return INNER_ETHERNET, off
    return proto, off
