"""IPv4/IPv6 fragment reassembly with a bounded table.

SIP over UDP regularly exceeds the path MTU (INVITEs with large SDP, IPv6
with many headers), so fragments must be put back together or whole calls
disappear. The table is bounded twice: by the number of partial datagrams
(oldest evicted first) and by capture time (a datagram whose fragments stop
arriving is given up after ``timeout`` seconds, like the kernel's
``ipfrag_time``). Both losses are counted in ``dropped``; capture time is used
so that reading a file gives the same answer as watching the wire.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

from callqual.collector.errors import PacketDecodeError

__all__ = ["FragmentReassembler"]

_MAX_DATAGRAM = 65535 + 40  # IPv6 payload length plus room for the fixed header
_MAX_PIECES = 1024  # an 8-byte-per-fragment flood must not cost quadratic time


class _Partial:
    __slots__ = ("first_ts", "pieces", "size", "total")

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.pieces: list[tuple[int, bytes]] = []
        self.total = -1  # known once the last fragment (MF=0) arrives
        self.size = 0


class FragmentReassembler:
    def __init__(self, max_buffers: int = 1024, timeout: float = 30.0) -> None:
        if max_buffers < 1:
            raise ValueError("max_buffers must be >= 1")
        self.max_buffers = max_buffers
        self.timeout = timeout
        self.dropped: Counter[str] = Counter()
        self._table: dict[Hashable, _Partial] = {}

    def __len__(self) -> int:
        return len(self._table)

    def add(self, key: Hashable, offset: int, more: bool, data: bytes, ts: float) -> bytes | None:
        """Add one fragment; returns the reassembled payload once it is complete, else None.

        Raises PacketDecodeError for a fragment that cannot belong to a valid
        datagram (the partial datagram is then discarded too).
        """
        self._expire(ts)
        table = self._table
        part = table.get(key)
        if part is None:
            if len(table) >= self.max_buffers:
                del table[next(iter(table))]
                self.dropped["ip.fragment_evicted"] += 1
            part = table[key] = _Partial(ts)
        end = offset + len(data)
        if end > _MAX_DATAGRAM:
            del table[key]
            raise PacketDecodeError("ip.fragment_too_big", str(end))
        if more and len(data) % 8:
            del table[key]
            raise PacketDecodeError("ip.fragment_misaligned", str(len(data)))
        if not more:
            if part.total >= 0 and part.total != end:
                del table[key]
                raise PacketDecodeError("ip.fragment_inconsistent", "two different last fragments")
            part.total = end
        if len(part.pieces) >= _MAX_PIECES:
            del table[key]
            raise PacketDecodeError("ip.fragment_too_many")
        part.pieces.append((offset, data))
        part.size += len(data)
        if part.total < 0 or part.size < part.total:
            return None
        # Enough bytes arrived in total; check that they cover [0, total) without holes.
        part.pieces.sort(key=lambda p: p[0])
        covered = 0
        for off, piece in part.pieces:
            if off > covered:
                return None
            covered = max(covered, off + len(piece))
        if covered < part.total:
            return None
        buf = bytearray(part.total)
        for off, piece in part.pieces:
            # Overlapping bytes come from resent fragments and are identical in
            # practice; whichever is written last wins and nothing is rejected.
            buf[off : off + len(piece)] = piece
        del table[key]
        return bytes(buf[: part.total])

    def _expire(self, now: float) -> None:
        table = self._table
        limit = now - self.timeout
        # Insertion order is arrival order of the first fragment, so only the head can be stale.
        while table:
            key = next(iter(table))
            if table[key].first_ts >= limit:
                break
            del table[key]
            self.dropped["ip.fragment_timeout"] += 1
