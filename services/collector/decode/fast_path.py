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

__all__ = ["flow_key_of", "udp_flow_key"]

_LT_ETHERNET = 1
_ETH_IPV4 = b"\x08\x00"
_ETH_VLAN = b"\x81\x00"
_PORTS = struct.Struct("!HH")


def udp_flow_key(linktype: int, data: bytes) -> tuple[bytes, int] | None:
    """(flow key, offset of the UDP payload) for Ethernet[+802.1Q]/IPv4(IHL=5, unfragmented)/UDP, else None.

    Declines (None) whenever the slow path could answer differently: IP
    options, fragments, any other encapsulation, and frames whose IP length
    does not end at the end of the frame (Ethernet padding or a trailing
    FCS would otherwise leak into the payload).
    """
    if linktype != _LT_ETHERNET:
        return None
    et = data[12:14]
    if et == _ETH_IPV4:
        o = 14
    elif et == _ETH_VLAN and data[16:18] == _ETH_IPV4:
        o = 18
    else:
        return None
    # version 4 + IHL 5, then: total length == rest of frame, no MF/offset, protocol UDP
    if (
        data[o : o + 1] != b"\x45"
        or data[o + 9 : o + 10] != b"\x11"
        or len(data) - o != ((data[o + 2] << 8) | data[o + 3])
        or (data[o + 6] & 0x3F) | data[o + 7]
        or len(data) < o + 28
    ):
        return None
    return data[o + 12 : o + 20] + data[o + 20 : o + 24], o + 28


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
