"""Link layers: find where the network-layer packet starts in a frame.

Every function here answers "which network protocol, at which offset" and
nothing else, so that tunnels (GRE carrying Ethernet, ERSPAN) can re-enter
the same code. Network protocols are named by their EtherType because that
is the one numbering every link layer can be mapped onto.
"""

from __future__ import annotations

from callqual.collector.errors import PacketDecodeError

__all__ = [
    "ETH_IPV4",
    "ETH_IPV6",
    "LINKTYPES",
    "SkipFrame",
    "strip_ethernet",
    "strip_link",
]

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
_ETH_VLAN = frozenset((0x8100, 0x88A8, 0x9100, 0x9200, 0x9300))  # 802.1Q, 802.1ad and pre-standard QinQ
_ETH_MPLS = frozenset((0x8847, 0x8848))
_ETH_PPPOE_SESSION = 0x8864
_PPP_IPV4 = 0x0021
_PPP_IPV6 = 0x0057

LT_NULL = 0
LT_ETHERNET = 1
LT_RAW_12 = 12  # DLT_RAW on most BSDs
LT_RAW_14 = 14  # DLT_RAW on OpenBSD
LT_RAW = 101
LT_LOOP = 108
LT_LINUX_SLL = 113
LT_IPV4 = 228
LT_IPV6 = 229
LT_LINUX_SLL2 = 276

#: Link types strip_link() understands.
LINKTYPES = frozenset(
    (
        LT_NULL,
        LT_ETHERNET,
        LT_RAW_12,
        LT_RAW_14,
        LT_RAW,
        LT_LOOP,
        LT_LINUX_SLL,
        LT_IPV4,
        LT_IPV6,
        LT_LINUX_SLL2,
    )
)

# BSD address families as they appear in NULL/LOOP headers. AF_INET6 differs
# between the systems that write these headers, so all known values map to IPv6.
_AF_TO_ETH = {2: ETH_IPV4, 10: ETH_IPV6, 24: ETH_IPV6, 28: ETH_IPV6, 30: ETH_IPV6}

_MAX_TAGS = 8


class SkipFrame(Exception):  # noqa: N818 - a skip is an outcome, not an error
    """Deliberately not analysed (not an error): carries the skip reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _by_version(data: bytes, off: int) -> tuple[int, int]:
    if off >= len(data):
        raise PacketDecodeError("link.truncated", "no network header")
    v = data[off] >> 4
    if v == 4:
        return ETH_IPV4, off
    if v == 6:
        return ETH_IPV6, off
    raise SkipFrame("link.non_ip")


def strip_ethernet(data: bytes, off: int = 0) -> tuple[int, int]:
    """Ethernet II header, any number of VLAN tags, MPLS labels and PPPoE session; -> (ethertype, offset)."""
    end = len(data)
    if off + 14 > end:
        raise PacketDecodeError("link.truncated", "ethernet header")
    etype = (data[off + 12] << 8) | data[off + 13]
    off += 14
    tags = 0
    while etype in _ETH_VLAN:
        tags += 1
        if tags > _MAX_TAGS:
            raise PacketDecodeError("link.too_many_tags")
        if off + 4 > end:
            raise PacketDecodeError("link.truncated", "vlan tag")
        etype = (data[off + 2] << 8) | data[off + 3]
        off += 4
    if etype in (ETH_IPV4, ETH_IPV6):
        return etype, off
    if etype < 0x0600:
        raise SkipFrame("link.llc")  # 802.3 length field: LLC/SNAP frames carry no IP we care about
    if etype in _ETH_MPLS:
        for _ in range(_MAX_TAGS):
            if off + 4 > end:
                raise PacketDecodeError("link.truncated", "mpls label")
            bottom = data[off + 2] & 1
            off += 4
            if bottom:
                return _by_version(data, off)
        raise PacketDecodeError("link.too_many_tags", "mpls")
    if etype == _ETH_PPPOE_SESSION:
        if off + 8 > end:
            raise PacketDecodeError("link.truncated", "pppoe")
        ppp = (data[off + 6] << 8) | data[off + 7]
        if ppp == _PPP_IPV4:
            return ETH_IPV4, off + 8
        if ppp == _PPP_IPV6:
            return ETH_IPV6, off + 8
        raise SkipFrame("link.non_ip")
    raise SkipFrame("link.non_ip")


def strip_link(linktype: int, data: bytes) -> tuple[int, int]:
    """Strip the link header of a captured frame; -> (ethertype of the network layer, its offset).

    Raises SkipFrame for frames that are fine but carry no IP, and
    PacketDecodeError for frames too short for their own link header.
    """
    if linktype == LT_ETHERNET:
        return strip_ethernet(data, 0)
    if linktype == LT_LINUX_SLL:
        if len(data) < 16:
            raise PacketDecodeError("link.truncated", "sll header")
        proto = (data[14] << 8) | data[15]
        if proto in (ETH_IPV4, ETH_IPV6):
            return proto, 16
        if proto in _ETH_VLAN:
            # SLL keeps the VLAN tag in the payload when the capture did not strip it.
            if len(data) < 20:
                raise PacketDecodeError("link.truncated", "vlan tag")
            proto = (data[18] << 8) | data[19]
            if proto in (ETH_IPV4, ETH_IPV6):
                return proto, 20
        raise SkipFrame("link.non_ip")
    if linktype == LT_LINUX_SLL2:
        if len(data) < 20:
            raise PacketDecodeError("link.truncated", "sll2 header")
        proto = (data[0] << 8) | data[1]
        if proto in (ETH_IPV4, ETH_IPV6):
            return proto, 20
        raise SkipFrame("link.non_ip")
    if linktype in (LT_RAW, LT_RAW_12, LT_RAW_14):
        return _by_version(data, 0)
    if linktype == LT_IPV4:
        return ETH_IPV4, 0
    if linktype == LT_IPV6:
        return ETH_IPV6, 0
    if linktype in (LT_NULL, LT_LOOP):
        if len(data) < 4:
            raise PacketDecodeError("link.truncated", "loopback header")
        if linktype == LT_LOOP:
            family = int.from_bytes(data[:4], "big")
        else:
            # NULL stores the family in the byte order of the capturing host.
            family = int.from_bytes(data[:4], "little")
            if family > 0xFFFF:
                family = int.from_bytes(data[:4], "big")
        net = _AF_TO_ETH.get(family)
        if net is None:
            raise SkipFrame("link.non_ip")
        return net, 4
    raise SkipFrame("link.unsupported_linktype")
