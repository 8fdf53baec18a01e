"""Where the headers of one frame sit, so a mutator can aim at a length or offset field.

Deliberately naive: it trusts the fields it reads (that is the point of
fuzzing them) and reuses the collector's link-layer stripping, so every
link type the collector reads can be aimed at.
"""

from __future__ import annotations

from dataclasses import dataclass

from callqual.collector.decode.linklayer import ETH_IPV4, ETH_IPV6, SkipFrame, strip_link
from callqual.collector.errors import PacketDecodeError

IPPROTO_TCP = 6
IPPROTO_UDP = 17


@dataclass(frozen=True, slots=True)
class Layers:
    """Offsets of one frame's headers; ``None`` where the frame has no such layer."""

    ip: int
    ip_version: int
    l4: int | None = None
    l4_proto: int | None = None
    #: first byte of the UDP or TCP payload
    payload: int | None = None


def locate(linktype: int, data: bytes) -> Layers | None:
    """The frame's IP header and, when there is one, its UDP/TCP header and payload."""
    try:
        ethertype, off = strip_link(linktype, data)
    except (SkipFrame, PacketDecodeError):
        return None
    if ethertype == ETH_IPV4 and len(data) >= off + 20:
        l4 = off + (data[off] & 0x0F) * 4
        proto = data[off + 9]
        return _with_l4(Layers(off, 4), data, l4, proto)
    if ethertype == ETH_IPV6 and len(data) >= off + 40:
        return _with_l4(Layers(off, 6), data, off + 40, data[off + 6])
    return None


def _with_l4(ip: Layers, data: bytes, l4: int, proto: int) -> Layers:
    if proto == IPPROTO_UDP and len(data) >= l4 + 8:
        return Layers(ip.ip, ip.ip_version, l4, proto, l4 + 8)
    if proto == IPPROTO_TCP and len(data) >= l4 + 20:
        return Layers(ip.ip, ip.ip_version, l4, proto, l4 + (data[l4 + 12] >> 4) * 4)
    return ip


def looks_like_rtp_or_rtcp(data: bytes, at: int) -> bool:
    """Version 2 in the first byte and room for a fixed RTP header: RTP or RTCP, to be aimed at."""
    return len(data) >= at + 12 and data[at] >> 6 == 2


def is_rtcp(data: bytes, at: int) -> bool:
    return 200 <= data[at + 1] <= 207
