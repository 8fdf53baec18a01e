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
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ETH_IPV4_UDP_HEAD",
    "ETH_IPV4_UDP_PAYLOAD",
    "RTP_HEAD_BYTES",
    "RTP_STREAM_KEY",
    "eth_ipv4_udp_rtp",
    "flow_key_of",
    "udp_flow_key",
]

_LT_ETHERNET = 1
_PORTS = struct.Struct("!HH")
# From the EtherType on: type, version/IHL, (TOS), total length, (id), flags/fragment offset, (TTL), protocol.
_HEAD = struct.Struct("!HBxH2xHxB").unpack_from
#: For callers that inline the untagged case in their own loop (Collector.run): the same
#: reader at offset 12, and where the UDP payload starts (14 Ethernet + 20 IPv4 + 8 UDP).
ETH_IPV4_UDP_HEAD = _HEAD
ETH_IPV4_UDP_PAYLOAD = 42

#: Leading bytes of a frame that the vectorised test below reads: Ethernet, IPv4 without
#: options, UDP, the 12-byte RTP header and the first payload byte.
RTP_HEAD_BYTES: Final[int] = 55
#: Columns of those bytes that name an RTP stream: the udp_flow_key() bytes, then the SSRC.
RTP_STREAM_KEY: Final[npt.NDArray[np.intp]] = np.r_[26:38, 50:54]


def eth_ipv4_udp_rtp(heads: npt.NDArray[np.uint8], caplen: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Per row of ``heads`` (each frame's first RTP_HEAD_BYTES bytes): the inline test of Collector.run.

    True where the frame is untagged Ethernet/IPv4 (IHL 5, unfragmented, its
    IP length ending exactly at the end of the frame)/UDP carrying at least
    a 12-byte RTP header whose first byte is 0x80 (version 2, no padding,
    extension or CSRC): the frames whose RTP header sits at a fixed offset.
    It is the scalar test of the per-frame loop applied to a whole chunk at
    once; rows of frames shorter than RTP_HEAD_BYTES may hold bytes of the
    next record, and come out False through the length test.
    """
    ip_len = (heads[:, 16].astype(np.int64) << 8) | heads[:, 17]
    ok: npt.NDArray[np.bool_] = caplen >= ETH_IPV4_UDP_PAYLOAD + 12
    ok &= heads[:, 12] == 0x08
    ok &= heads[:, 13] == 0x00
    ok &= heads[:, 14] == 0x45
    ok &= heads[:, 23] == 17
    ok &= (heads[:, 20] & 0x3F) == 0
    ok &= heads[:, 21] == 0
    ok &= ip_len == caplen - 14
    ok &= heads[:, ETH_IPV4_UDP_PAYLOAD] == 0x80
    return ok


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
