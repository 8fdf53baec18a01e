"""SCTP DATA chunks carrying SIP (RFC 4168).

A SIP message is one SCTP user message. Most fit one DATA chunk; a large
INVITE (SDP plus ISUP, say) is split into fragments with consecutive TSNs,
which are joined here per association direction and stream. Only in-order
fragment runs are joined: a lost or reordered fragment loses that message
(counted), which keeps this far simpler than a full SCTP receiver for a
transport that is rare in VoIP captures. The table of partial messages is
bounded in count and in bytes.
"""

from __future__ import annotations

from collections import Counter

from callqual.collector.decode.sip_framing import is_sip_start
from callqual.collector.errors import PacketDecodeError

__all__ = ["SctpMessages"]

_DATA = 0
_FLAG_END = 0x01
_FLAG_BEGIN = 0x02
_FLAG_UNORDERED = 0x04
_MAX_CHUNKS = 256

_PartKey = tuple[str, int, str, int, int, int]


class _Partial:
    __slots__ = ("next_tsn", "parts", "size")

    def __init__(self, tsn: int, first: bytes) -> None:
        self.next_tsn = (tsn + 1) & 0xFFFFFFFF
        self.parts = [first]
        self.size = len(first)


class SctpMessages:
    def __init__(
        self, max_partial: int, max_message: int, skipped: Counter[str], dropped: Counter[str]
    ) -> None:
        self.max_partial = max_partial
        self.max_message = max_message
        self.skipped = skipped
        self.dropped = dropped
        self._partial: dict[_PartKey, _Partial] = {}

    def packet(self, src: str, dst: str, data: bytes, off: int, end: int) -> tuple[int, int, list[bytes]]:
        """-> (src port, dst port, SIP messages completed by this packet)."""
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
                user = data[pos + 16 : pos + clen]
                be = cflags & (_FLAG_BEGIN | _FLAG_END)
                if be != (_FLAG_BEGIN | _FLAG_END):
                    tsn = int.from_bytes(data[pos + 4 : pos + 8], "big")
                    sid = (data[pos + 8] << 8) | data[pos + 9]
                    key = (src, sport, dst, dport, sid, cflags & _FLAG_UNORDERED)
                    joined = self._fragment(key, be, tsn, user)
                    if joined is None:
                        pos += (clen + 3) & ~3
                        continue
                    user = joined
                if is_sip_start(user):
                    out.append(user)
                else:
                    self.skipped["sctp.not_sip"] += 1
            pos += (clen + 3) & ~3
        return sport, dport, out

    def _fragment(self, key: _PartKey, be: int, tsn: int, user: bytes) -> bytes | None:
        table = self._partial
        if be == _FLAG_BEGIN:
            if table.pop(key, None) is not None:
                self.dropped["sctp.fragment_lost"] += 1
            if len(table) >= self.max_partial:
                del table[next(iter(table))]
                self.dropped["sctp.fragment_evicted"] += 1
            table[key] = _Partial(tsn, user)
            self.skipped["sctp.fragment_queued"] += 1
            return None
        part = table.get(key)
        if part is None or part.next_tsn != tsn:
            if part is not None:
                del table[key]
            self.dropped["sctp.fragment_lost"] += 1
            return None
        part.parts.append(user)
        part.size += len(user)
        part.next_tsn = (tsn + 1) & 0xFFFFFFFF
        if part.size > self.max_message:
            del table[key]
            self.dropped["sctp.message_too_big"] += 1
            return None
        if be == _FLAG_END:
            del table[key]
            return b"".join(part.parts)
        self.skipped["sctp.fragment_queued"] += 1
        return None
