"""SCTP DATA chunks carrying SIP (RFC 4168).

Only unfragmented user messages are taken: a SIP message normally fits one
DATA chunk, and reassembling SCTP fragments (per stream, per TSN) would need a
second stream reassembler for a transport that is rare in VoIP captures.
Fragments are counted as skipped rather than silently ignored.
"""

from __future__ import annotations

from collections import Counter

from callqual.collector.decode.sip_framing import is_sip_start
from callqual.collector.errors import PacketDecodeError

__all__ = ["sctp_sip_messages"]

_DATA = 0
_FLAG_END = 0x01
_FLAG_BEGIN = 0x02
_MAX_CHUNKS = 256


def sctp_sip_messages(data: bytes, off: int, end: int, skipped: Counter[str]) -> tuple[int, int, list[bytes]]:
    """-> (src port, dst port, SIP messages found in complete DATA chunks)."""
    if off + 12 > end:
        raise PacketDecodeError("sctp.truncated", "common header")
    sport = (data[off] << 8) | data[off + 1]
    dport = (data[off + 2] << 8) | data[off + 3]
    pos = off + 12
    out: list[bytes] = []
    for _ in range(_MAX_CHUNKS):
        if pos + 4 > end:
            break
        ctype = data[pos]
        cflags = data[pos + 1]
        clen = (data[pos + 2] << 8) | data[pos + 3]
        if clen < 4 or pos + clen > end:
            raise PacketDecodeError("sctp.bad_chunk_length", str(clen))
        if ctype == _DATA:
            if clen < 16:
                raise PacketDecodeError("sctp.bad_chunk_length", str(clen))
            if cflags & (_FLAG_BEGIN | _FLAG_END) != (_FLAG_BEGIN | _FLAG_END):
                skipped["sctp.fragmented"] += 1
            else:
                user = data[pos + 16 : pos + clen]
                if is_sip_start(user):
                    out.append(user)
                else:
                    skipped["sctp.not_sip"] += 1
        pos += (clen + 3) & ~3
    return sport, dport, out
