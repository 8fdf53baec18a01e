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

from callqual.collector.decode.linklayer import (
    LT_ETHERNET,
    LT_IPV4,
    LT_LINUX_SLL,
    LT_LINUX_SLL2,
    LT_LOOP,
    LT_NULL,
    LT_RAW,
    LT_RAW_12,
    LT_RAW_14,
)
from callqual.collector.packet import Frame, Payload

__all__ = [
    "ETH_IPV4_UDP_HEAD",
    "ETH_IPV4_UDP_PAYLOAD",
    "FIXED_IP_LINKTYPES",
    "RTP_HEAD_BYTES",
    "RTP_STREAM_KEY",
    "flow_key_of",
    "ip_offsets",
    "ipv4_udp_rtp",
    "udp_flow_key",
    "udp_payload",
]

_PORTS = struct.Struct("!HH")
_inet_ntoa = socket.inet_ntoa
# From the EtherType on: type, version/IHL, (TOS), total length, (id), flags/fragment offset, (TTL), protocol.
_HEAD = struct.Struct("!HBxH2xHxB").unpack_from
# The same from the IPv4 header on: version/IHL, total length, flags/fragment offset, protocol.
_IP_HEAD = struct.Struct("!BxH2xHxB").unpack_from

#: Link types on which an IPv4 header sits at a fixed offset (see ip_offsets()): Ethernet
#: (untagged or one 802.1Q tag, what span ports deliver), Linux cooked SLL and SLL2 (``tcpdump
#: -i any``), raw IP and BSD loopback. Anything else (QinQ, MPLS, tunnels) is the decoder's.
FIXED_IP_LINKTYPES: Final[frozenset[int]] = frozenset(
    (LT_ETHERNET, LT_NULL, LT_RAW_12, LT_RAW_14, LT_RAW, LT_LOOP, LT_LINUX_SLL, LT_IPV4, LT_LINUX_SLL2)
)
_AF_INET_HOST = (b"\x02\x00\x00\x00", b"\x00\x00\x00\x02")  # BSD NULL header: AF_INET in either byte order
#: For callers that inline the untagged case in their own loop (Collector.run): the same
#: reader at offset 12, and where the UDP payload starts (14 Ethernet + 20 IPv4 + 8 UDP).
ETH_IPV4_UDP_HEAD = _HEAD
ETH_IPV4_UDP_PAYLOAD = 42

#: Leading bytes of a frame that the vectorised test below reads: Ethernet, IPv4 without
#: options, UDP, the 12-byte RTP header and the first payload byte.
RTP_HEAD_BYTES: Final[int] = 55
#: Columns of those bytes that name an RTP stream: the udp_flow_key() bytes, then the SSRC.
RTP_STREAM_KEY: Final[npt.NDArray[np.intp]] = np.r_[26:38, 50:54]


def ipv4_udp_rtp(heads: npt.NDArray[np.uint8], ip_caplen: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Per row of ``heads``: the test of udp_flow_key() plus an RTP header at a fixed offset.

    ``heads`` rows are shifted so that the IPv4 header of each frame starts
    at column 14, as if every frame were untagged Ethernet (see
    ip_offsets()), and ``ip_caplen`` is each frame's length from there on.
    True where the IPv4 header has IHL 5, is unfragmented, ends exactly at
    the end of the frame and carries UDP with at least a 12-byte RTP header
    whose first byte is 0x80 (version 2, no padding, extension or CSRC): the
    frames whose RTP header sits at a fixed offset. It is the scalar test of
    the per-frame path applied to a whole chunk at once; rows of frames too
    short for it may hold bytes of the next record, and come out False
    through the length test.
    """
    ip_len = (heads[:, 16].astype(np.int64) << 8) | heads[:, 17]
    ok: npt.NDArray[np.bool_] = ip_caplen >= ETH_IPV4_UDP_PAYLOAD - 14 + 12
    ok &= heads[:, 14] == 0x45
    ok &= heads[:, 23] == 17
    ok &= (heads[:, 20] & 0x3F) == 0
    ok &= heads[:, 21] == 0
    ok &= ip_len == ip_caplen
    ok &= heads[:, ETH_IPV4_UDP_PAYLOAD] == 0x80
    return ok


def ip_offsets(
    linktype: int, data: npt.NDArray[np.uint8], start: npt.NDArray[np.int64], caplen: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """ip_offset() of every record (``data[start[i]:start[i] + caplen[i]]``): -1 where it has none.

    Bytes are read at fixed small offsets from each start, possibly past a
    short record (into the next one, never past ``data``); a record too short
    for its link header gets -1.
    """
    none = np.full(len(start), -1, dtype=np.int64)
    last = len(data) - 1
    if last < 0:  # a batch of records captured with no bytes at all
        return none

    def byte(k: int) -> npt.NDArray[np.int64]:
        return data[np.minimum(start + k, last)].astype(np.int64)

    if linktype == LT_ETHERNET:
        etype = byte(12) << 8 | byte(13)
        inner = byte(16) << 8 | byte(17)
        off = np.where(etype == 0x0800, 14, np.where((etype == 0x8100) & (inner == 0x0800), 18, -1))
    elif linktype == LT_LINUX_SLL:
        off = np.where((byte(14) == 0x08) & (byte(15) == 0x00), 16, -1)
    elif linktype == LT_LINUX_SLL2:
        off = np.where((byte(0) == 0x08) & (byte(1) == 0x00), 20, -1)
    elif linktype in (LT_RAW_12, LT_RAW_14, LT_RAW, LT_IPV4):
        off = np.where(byte(0) >> 4 == 4, 0, -1)
    elif linktype in (LT_NULL, LT_LOOP):
        family = byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3)
        ipv4 = family == 2 if linktype == LT_LOOP else (family == 2) | (family == 0x02000000)
        off = np.where(ipv4, 4, -1)
    else:
        return none
    result: npt.NDArray[np.int64] = np.where(caplen >= off + 20, off, none)
    return result


def _ip_offset(linktype: int, data: bytes) -> int:
    """Offset of the IPv4 header of a frame whose link layer puts it at a fixed place, else -1."""
    n = len(data)
    if linktype == LT_ETHERNET:
        if n >= 14 and data[12] == 0x08 and data[13] == 0x00:
            off = 14
        elif n >= 18 and data[12] == 0x81 and data[13] == 0x00 and data[16] == 0x08 and data[17] == 0x00:
            off = 18
        else:
            return -1
    elif linktype == LT_LINUX_SLL:
        off = 16 if n >= 16 and data[14] == 0x08 and data[15] == 0x00 else -1
    elif linktype == LT_LINUX_SLL2:
        off = 20 if n >= 2 and data[0] == 0x08 and data[1] == 0x00 else -1
    elif linktype in (LT_RAW_12, LT_RAW_14, LT_RAW, LT_IPV4):
        off = 0 if n and data[0] >> 4 == 4 else -1
    elif linktype == LT_NULL:
        off = 4 if data[:4] in _AF_INET_HOST else -1
    elif linktype == LT_LOOP:
        off = 4 if data[:4] == _AF_INET_HOST[1] else -1
    else:
        return -1
    return off if n >= off + 20 else -1


def udp_flow_key(linktype: int, data: bytes) -> tuple[bytes, int] | None:
    """(flow key, offset of the UDP payload) for IPv4 (IHL=5, unfragmented)/UDP at a fixed offset, else None.

    Fixed offset: untagged or 802.1Q-tagged Ethernet, Linux SLL/SLL2, raw IP
    or BSD loopback (FIXED_IP_LINKTYPES). Declines (None) whenever the slow
    path could answer differently: IP options, fragments, any other
    encapsulation, and frames whose IP length does not end at the end of
    the frame (Ethernet padding or a trailing FCS would otherwise leak into
    the payload). One struct call reads every field tested; with IHL=5
    addresses and ports are contiguous, so the key is a single slice.
    """
    n = len(data)
    if linktype == LT_ETHERNET and n >= 42 and data[12] == 0x08 and data[13] == 0x00:
        o = 14  # the common case, without the general look-up
    else:
        o = _ip_offset(linktype, data)
        if o < 0 or n < o + 28:
            return None
    vihl, total, frag, proto = _IP_HEAD(data, o)
    if vihl != 0x45 or proto != 17 or frag & 0x3FFF or total != n - o:
        return None
    return data[o + 12 : o + 24], o + 28


def udp_payload(frame: Frame, key: bytes, at: int) -> Payload | None:
    """The datagram ``FrameDecoder.decode`` returns for a frame ``udp_flow_key`` named ``(key, at)``.

    Such a frame is IPv4 without options or fragments whose IP length ends
    the frame, so only the UDP length is left to check: the decoder's layer
    walk would only repeat what the key already says (~5 us of a SIP
    message's budget). None when the UDP length is one the decoder counts
    (empty, too short, past the end): the caller then asks the decoder.
    """
    data = frame.data
    ulen = (data[at - 4] << 8) | data[at - 3]
    if ulen <= 8 or at - 8 + ulen > len(data):
        return None
    return Payload(
        frame.number,
        frame.ts,
        _inet_ntoa(key[:4]),
        (key[8] << 8) | key[9],
        _inet_ntoa(key[4:8]),
        (key[10] << 8) | key[11],
        "udp",
        data[at : at - 8 + ulen],
    )


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
