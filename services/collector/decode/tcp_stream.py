"""TCP stream reassembly for SIP over TCP and SIP over WebSocket.

Each direction of a connection is an independent byte stream. Segments are
put in order (retransmissions and overlaps trimmed, out-of-order segments
held in a bounded window) and handed to a framer chosen from the first bytes
of the stream: SIP (RFC 3261 framing), or WebSocket after an HTTP upgrade.

Only streams that look like SIP get state. A segment of an unknown stream is
examined on its own: if it starts a SIP message or a WebSocket handshake a
stream is created (this is also how a capture that starts mid-connection is
picked up), otherwise it is counted as ``tcp.not_sip`` and forgotten. That
keeps the bounded table for the streams that matter; HTTPS, database and
other traffic never occupies it past its first data segment.
"""

from __future__ import annotations

from collections import Counter

from callqual.collector.decode.sip_framing import MAYBE, NO, YES, SipFramer, is_sip_start, sip_start_state
from callqual.collector.decode.websocket import WebSocketFramer, is_upgrade_request, is_upgrade_response

__all__ = ["TCP_ACK", "TCP_FIN", "TCP_RST", "TCP_SYN", "StreamKey", "TcpStreams"]

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

StreamKey = tuple[str, int, str, int]  # (src ip, src port, dst ip, dst port) of one direction

_UNDECIDED = 0
_SIP = 1
_WS = 2
_MAX_PENDING_SEGMENTS = 256
_HTTP_PREFIXES = (b"GET ", b"HTTP/1.")


def _seq_diff(a: int, b: int) -> int:
    """a - b in 32-bit sequence space, as a signed number."""
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d & 0x80000000 else d


class _Direction:
    __slots__ = ("fin_seq", "framer", "head", "mode", "next_seq", "pending", "pending_bytes")

    def __init__(self, next_seq: int) -> None:
        self.next_seq = next_seq
        self.mode = _UNDECIDED
        self.head = bytearray()  # first bytes, until the stream is classified
        self.framer: SipFramer | WebSocketFramer | None = None
        self.pending: dict[int, bytes] = {}  # out-of-order segments by sequence number
        self.pending_bytes = 0
        self.fin_seq = -1


class TcpStreams:
    """All TCP directions being followed; ``segment()`` returns framed ``(transport, message)`` pairs."""

    def __init__(
        self,
        max_streams: int,
        max_buffer: int,
        errors: Counter[str],
        skipped: Counter[str],
        dropped: Counter[str],
    ) -> None:
        if max_streams < 1 or max_buffer < 1:
            raise ValueError("max_streams and max_buffer must be >= 1")
        self.max_streams = max_streams
        self.max_buffer = max_buffer
        self.errors = errors
        self.skipped = skipped
        self.dropped = dropped
        self._streams: dict[StreamKey, _Direction] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def segment(self, key: StreamKey, seq: int, flags: int, data: bytes) -> list[tuple[str, bytes]]:
        streams = self._streams
        st = streams.pop(key, None)  # re-inserted at the end below: the dict is kept in LRU order
        if flags & TCP_RST:
            if st is not None:
                self._close(st)
            rev = (key[2], key[3], key[0], key[1])
            other = streams.pop(rev, None)
            if other is not None:
                self._close(other)
            return []
        if flags & TCP_SYN:
            if st is not None:
                self._close(st)  # the 4-tuple is reused by a new connection
            seq = (seq + 1) & 0xFFFFFFFF
            st = _Direction(seq)
        elif st is None:
            if not data:
                return []
            if not self._starts_interesting(data):
                self.skipped["tcp.not_sip"] += 1
                return []
            st = _Direction(seq)
        out: list[tuple[str, bytes]] = []
        if data:
            self._accept(st, seq, data, out)
            if st.mode < 0:
                return out  # classified as not SIP: forget it
        if flags & TCP_FIN:
            st.fin_seq = (seq + len(data)) & 0xFFFFFFFF
        if st.fin_seq >= 0 and st.next_seq == st.fin_seq:
            self._close(st)
            return out
        if len(streams) >= self.max_streams:
            victim = next(iter(streams))
            self._close(streams.pop(victim), evicted=True)
            self.dropped["tcp.stream_evicted"] += 1
        streams[key] = st
        return out

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _starts_interesting(data: bytes) -> bool:
        body = data.lstrip(b"\r\n")
        if not body:
            return False
        if body.startswith(_HTTP_PREFIXES):
            return True
        return sip_start_state(body) != NO

    def _accept(self, st: _Direction, seq: int, data: bytes, out: list[tuple[str, bytes]]) -> None:
        rel = _seq_diff(seq, st.next_seq)
        if rel < 0:
            if rel + len(data) <= 0:
                self.skipped["tcp.retransmission"] += 1
                return
            data = data[-rel:]
            rel = 0
        if rel > 0:
            old = st.pending.get(seq)
            if old is None or len(old) < len(data):
                st.pending[seq] = data
                st.pending_bytes += len(data) - (len(old) if old is not None else 0)
            while st.pending_bytes > self.max_buffer or len(st.pending) > _MAX_PENDING_SEGMENTS:
                # The hole is not going to be filled within our window: give up on it.
                self.dropped["tcp.out_of_order_overflow"] += 1
                first = min(st.pending, key=lambda s: _seq_diff(s, st.next_seq))
                st.next_seq = first
                if isinstance(st.framer, SipFramer):
                    st.framer.resync()
                elif st.mode == _WS:
                    st.mode = -1  # WebSocket frames cannot be resynchronised: drop the stream
                    return
                self._drain(st, out)
                if st.mode < 0:
                    return
            return
        self._deliver(st, data, out)
        if st.mode >= 0:
            st.next_seq = (st.next_seq + len(data)) & 0xFFFFFFFF
            self._drain(st, out)

    def _drain(self, st: _Direction, out: list[tuple[str, bytes]]) -> None:
        progressed = True
        while progressed and st.pending and st.mode >= 0:
            progressed = False
            for s in list(st.pending):
                rel = _seq_diff(s, st.next_seq)
                if rel > 0:
                    continue
                d = st.pending.pop(s)
                st.pending_bytes -= len(d)
                if rel + len(d) <= 0:
                    continue
                d = d[-rel:] if rel else d
                self._deliver(st, d, out)
                if st.mode < 0:
                    return
                st.next_seq = (st.next_seq + len(d)) & 0xFFFFFFFF
                progressed = True

    def _deliver(self, st: _Direction, data: bytes, out: list[tuple[str, bytes]]) -> None:
        if st.mode == _SIP:
            assert isinstance(st.framer, SipFramer)
            for msg in st.framer.feed(data):
                out.append(("tcp", msg))
            return
        if st.mode == _WS:
            assert isinstance(st.framer, WebSocketFramer)
            if st.framer.closed:
                return
            for msg in st.framer.feed(data):
                if is_sip_start(msg):
                    out.append(("ws", msg))
                else:
                    self.skipped["ws.not_sip"] += 1
            return
        # Undecided: collect the first bytes until the stream says what it is.
        head = st.head
        head += data
        lead = 0
        while lead < len(head) and head[lead] in (13, 10):
            lead += 1
        if lead:
            del head[:lead]
        if not head:
            return
        if head.startswith(_HTTP_PREFIXES):
            end = head.find(b"\r\n\r\n")
            if end < 0:
                if len(head) > self.max_buffer:
                    self.dropped["tcp.http_header_too_long"] += 1
                    self._not_sip(st)
                return
            hdr = bytes(head[: end + 4])
            if is_upgrade_request(hdr) or is_upgrade_response(hdr):
                st.mode = _WS
                st.framer = WebSocketFramer(self.max_buffer, self.errors, self.dropped)
                rest = bytes(head[end + 4 :])
                st.head = bytearray()
                if rest:
                    self._deliver(st, rest, out)
                return
            self._not_sip(st)
            return
        state = sip_start_state(head)
        if state == MAYBE:
            return
        if state == YES:
            st.mode = _SIP
            st.framer = SipFramer(self.max_buffer, self.errors, self.dropped)
            rest = bytes(head)
            st.head = bytearray()
            self._deliver(st, rest, out)
            return
        self._not_sip(st)

    def _not_sip(self, st: _Direction) -> None:
        self.skipped["tcp.not_sip"] += 1
        st.mode = -1
        st.head = bytearray()
        st.pending.clear()
        st.pending_bytes = 0

    def _close(self, st: _Direction, evicted: bool = False) -> None:
        if isinstance(st.framer, SipFramer) and not evicted:
            st.framer.close()
        st.pending.clear()
        st.pending_bytes = 0
        st.framer = None
