"""The media fast path: a flow key for the common UDP packet at fixed offsets.

RTP is nearly all of the packets in a VoIP capture and its flows are known
in advance from SDP. Rather than running each packet through the general
decoder, the collector computes this 12-byte key (a handful of slices, no
string formatting, no objects) and looks it up in its table of known media
flows; only misses and unusual encapsulations go down the slow path.
The key is the raw network-order bytes ``src ip + dst ip + src port + dst port``.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["ETH_IPV4_UDP_HEAD", "ETH_IPV4_UDP_PAYLOAD", "flow_key_of", "udp_flow_key"]

_LT_ETHERNET = 1
_PORTS = struct.Struct("!HH")
# From the EtherType on: type, version/IHL, (TOS), total length, (id), flags/fragment offset, (TTL), protocol.
_HEAD = struct.Struct("!HBxH2xHxB").unpack_from
#: For callers that inline the untagged case in their own loop (Collector.run): the same
#: reader at offset 12, and where the UDP payload starts (14 Ethernet + 20 IPv4 + 8 UDP).
ETH_IPV4_UDP_HEAD = _HEAD
ETH_IPV4_UDP_PAYLOAD = 42


def udp_flow_key(linktype: int, data: bytes) -> tuple[bytes, int] | None:
    """(flow key, offset of the UDP payload) for Ethernet[+802.1Q]/IPv4(IHL=5, unfragmented)/UDP, else None.

    Declines (None) whenever the slow path could answer differently: IP
    options, fragments, any other encapsulation, and frames whose IP length
    does not end at the end of the frame (Ethernet padding or a trailing
    FCS would otherwise leak into the payload). One struct call reads every
    field tested; with IHL=5 addresses and ports are contiguous, so the key
    is a single slice.
    """
    n = len(data)
    if linktype != _LT_ETHERNET or n < 42:
        return None
    etype, vihl, total, frag, proto = _HEAD(data, 12)
    o = 14
    if etype == 0x8100:
        if n < 46:
            return None
        etype, vihl, total, frag, proto = _HEAD(data, 16)
        o = 18
    if etype != 0x0800 or vihl != 0x45 or proto != 17 or frag & 0x3FFF or total != n - o:
        return None
    return data[o + 12 : o + 24], o + 28


def flow_key_of(src_ip: str, src_port: int, dst_ip: str, dst_port: int) -> bytes | None:
    """The udp_flow_key() key for a flow named in SDP/SIP terms; None for IPv6 or a malformed address."""
    try:
        return (
            socket.inet_pton(socket.AF_INET, src_ip)
            + socket.inet_pton(socket.AF_INET, dst_ip)
            + _PORTS.pack(src_port, dst_port)
        )
    except (OSError, ValueError, struct.error):
        return None
