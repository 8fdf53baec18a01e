"""RTP fixed header parsing (RFC 3550 5.1) on the per-packet hot path.

One ``struct.unpack_from`` at fixed offsets and a few integer operations: no
objects are built per packet, the caller gets a plain tuple. Anything that
is not a well-formed version-2 header gives ``None`` -- never an exception --
because UDP payloads on media ports are not guaranteed to be RTP (STUN,
DTLS, ZRTP and RTCP share them, RFC 7983).
"""

import struct
from typing import Final

_FIXED: Final = struct.Struct("!BBHII")
_EXT: Final = struct.Struct("!HH")

#: RFC 3550 5.1: 12-byte fixed header.
RTP_HEADER_LEN: Final[int] = 12

#: RFC 5761 4 / RFC 3551 table 4: RTP payload types 72-76 collide with RTCP
#: packet types 200-204 when the marker bit is set; 77-95 are unassigned and
#: RFC 5761 says to avoid 64-95 altogether. A heuristic must reject them.
_FIRST_RESERVED_PT: Final[int] = 72
_LAST_RESERVED_PT: Final[int] = 95

#: (payload type, marker, sequence number, RTP timestamp, SSRC, payload offset, payload length)
RtpHeader = tuple[int, bool, int, int, int, int, int]


def parse_rtp(payload: bytes) -> RtpHeader | None:
    """Parse an RTP header; ``None`` if the datagram is not a valid RTP v2 packet.

    The payload offset skips the CSRC list (RFC 3550 5.1 CC) and the header
    extension (RFC 3550 5.3.1: 16-bit profile word, 16-bit length in 32-bit
    words); the payload length excludes padding (RFC 3550 5.1 P: the last
    octet counts the padding octets, itself included).

    A packet counts by its header, as tshark counts it (packet-rtp.c): in
    SRTP (RFC 3711) the last octet is the authentication tag, so with P set
    the "padding count" is noise. A count larger than the payload is clipped
    to it (payload length 0); a count of 0 makes tshark's dissector throw
    before its tap, so that packet is not RTP for us either.
    """
    size = len(payload)
    if size < 12:
        return None
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(payload)
    if b0 & 0xC0 != 0x80:
        return None
    offset = 12 + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if offset + 4 > size:
            return None
        offset += 4 + (_EXT.unpack_from(payload, offset)[1] << 2)
    if offset > size:
        return None
    end = size
    if b0 & 0x20:
        pad = payload[-1]
        if pad == 0:
            return None
        end = max(offset, size - pad)
    return b1 & 0x7F, b1 > 0x7F, seq, ts, ssrc, offset, end - offset


def looks_like_rtp(payload: bytes) -> bool:
    """Heuristic for RTP seen with no signalling (the capture missed the SDP).

    Version 2, a header that fits, and a payload type outside the range that
    would make it RTCP or that RFC 3551/5761 leave unused (72-95). This is the
    same test Wireshark's ``rtp_udp`` heuristic makes (packet-rtp.c
    ``dissect_rtp_heur``) minus its port checks; an RTCP datagram (PT 200-204
    with the top bit read as the marker) is rejected by the range check.
    """
    header = parse_rtp(payload)
    if header is None:
        return False
    if payload[0] & 0x20 and payload[-1] > len(payload) - header[5]:
        return False  # a guess must be strict: tshark's heuristic too rejects padding past the header
    return not (_FIRST_RESERVED_PT <= header[0] <= _LAST_RESERVED_PT)


#: RFC 6189 5: ZRTP packets share the media port; first octet 0x10 (version 0), magic cookie at 4.
_ZRTP_MAGIC: Final = b"ZRTP"


def is_zrtp(payload: bytes) -> bool:
    """A ZRTP key-agreement packet (Hello, Commit, DHPart, Confirm...): counted apart, never RTP."""
    return len(payload) >= 12 and payload[0] == 0x10 and payload[4:8] == _ZRTP_MAGIC
