"""IPv4 and IPv6 headers.

Parsers work on ``(data, off, end)`` rather than on slices so that the common
unfragmented packet is never copied on its way to the transport layer. ``end``
comes from the IP length field, not from the frame length: Ethernet pads
short frames and some captures carry a trailing FCS, neither of which belongs
to the datagram.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from callqual.collector.errors import PacketDecodeError

__all__ = ["IpHeader", "parse_ipv4", "parse_ipv6", "walk_ipv6_extensions"]

_inet_ntoa = socket.inet_ntoa
_AF_INET6 = socket.AF_INET6
_inet_ntop = socket.inet_ntop

IPPROTO_HOPOPTS = 0
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_AH = 51
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_MOBILITY = 135
IPPROTO_HIP = 139
IPPROTO_SHIM6 = 140
_EXT_GENERIC = frozenset(
    (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS, IPPROTO_MOBILITY, IPPROTO_HIP, IPPROTO_SHIM6)
)
_MAX_EXTENSIONS = 16


class IpHeader(NamedTuple):
    version: int
    proto: int  #: transport protocol (after IPv6 extension headers)
    src: str
    dst: str
    off: int  #: start of the payload in the data
    end: int  #: end of the payload in the data
    frag_offset: int  #: byte offset of this fragment (0 for an unfragmented packet)
    more_fragments: bool
    ident: int  #: fragment identification; -1 when the packet is not a fragment


def parse_ipv4(data: bytes, off: int, end: int) -> IpHeader:
    if off + 20 > end:
        raise PacketDecodeError("ip.truncated", "ipv4 header")
    vihl = data[off]
    if vihl >> 4 != 4:
        raise PacketDecodeError("ip.bad_version", str(vihl >> 4))
    hlen = (vihl & 0x0F) * 4
    if hlen < 20:
        raise PacketDecodeError("ip.bad_header_length", str(hlen))
    total = (data[off + 2] << 8) | data[off + 3]
    if total == 0:
        total = end - off  # TCP segmentation offload leaves the length unset on the capturing host
    elif total < hlen:
        raise PacketDecodeError("ip.bad_total_length", str(total))
    if off + total > end:
        raise PacketDecodeError("ip.truncated", "ipv4 payload")
    flags_frag = (data[off + 6] << 8) | data[off + 7]
    frag_offset = (flags_frag & 0x1FFF) * 8
    more = bool(flags_frag & 0x2000)
    ident = ((data[off + 4] << 8) | data[off + 5]) if (more or frag_offset) else -1
    return IpHeader(
        4,
        data[off + 9],
        _inet_ntoa(data[off + 12 : off + 16]),
        _inet_ntoa(data[off + 16 : off + 20]),
        off + hlen,
        off + total,
        frag_offset,
        more,
        ident,
    )


def walk_ipv6_extensions(
    nh: int, data: bytes, off: int, end: int
) -> tuple[int, int, tuple[int, bool, int] | None]:
    """Skip IPv6 extension headers; -> (upper protocol, its offset, fragment (offset, more, id) or None).

    Stops right after a Fragment header: what follows it is only
    meaningful once the datagram has been reassembled.
    """
    for _ in range(_MAX_EXTENSIONS):
        if nh in _EXT_GENERIC:
            if off + 8 > end:
                raise PacketDecodeError("ip.truncated", "ipv6 extension header")
            nxt = data[off]
            off += (data[off + 1] + 1) * 8
            nh = nxt
        elif nh == IPPROTO_FRAGMENT:
            if off + 8 > end:
                raise PacketDecodeError("ip.truncated", "ipv6 fragment header")
            nxt = data[off]
            fo = (data[off + 2] << 8) | data[off + 3]
            ident = int.from_bytes(data[off + 4 : off + 8], "big")
            off += 8
            return nxt, off, (fo & 0xFFF8, bool(fo & 1), ident)
        elif nh == IPPROTO_AH:
            if off + 8 > end:
                raise PacketDecodeError("ip.truncated", "ipv6 authentication header")
            nxt = data[off]
            off += (data[off + 1] + 2) * 4
            nh = nxt
        else:
            if off > end:
                raise PacketDecodeError("ip.truncated", "ipv6 extension header")
            return nh, off, None
    raise PacketDecodeError("ip.too_many_extensions")


def parse_ipv6(data: bytes, off: int, end: int) -> IpHeader:
    if off + 40 > end:
        raise PacketDecodeError("ip.truncated", "ipv6 header")
    if data[off] >> 4 != 6:
        raise PacketDecodeError("ip.bad_version", str(data[off] >> 4))
    plen = (data[off + 4] << 8) | data[off + 5]
    if plen == 0:
        plen = end - off - 40  # jumbogram or segmentation offload: the link layer knows the length
    if off + 40 + plen > end:
        raise PacketDecodeError("ip.truncated", "ipv6 payload")
    pend = off + 40 + plen
    nh, poff, frag = walk_ipv6_extensions(data[off + 6], data, off + 40, pend)
    src = _inet_ntop(_AF_INET6, data[off + 8 : off + 24])
    dst = _inet_ntop(_AF_INET6, data[off + 24 : off + 40])
    if frag is None:
        return IpHeader(6, nh, src, dst, poff, pend, 0, False, -1)
    fo, more, ident = frag
    if not more and fo == 0:
        # An "atomic fragment" (RFC 6946) is a whole datagram; never hold it for reassembly.
        nh, poff, _ = walk_ipv6_extensions(nh, data, poff, pend)
        return IpHeader(6, nh, src, dst, poff, pend, 0, False, -1)
    return IpHeader(6, nh, src, dst, poff, pend, fo, more, ident)
