"""Cutting SIP messages out of a byte stream (RFC 3261 section 18.3).

Over TCP a SIP message ends where its Content-Length says, so framing needs
only the start line, the header block and that one header; everything else
is left to the SIP parser. The buffer is bounded: a header block that never
ends, or a message larger than the bound, is dropped and counted instead of
growing memory, and the framer then hunts for the next start line so one bad
message does not cost the rest of the connection.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["SipFramer", "is_sip_start", "sip_start_state"]

# RFC 3261 token characters for the method, then a Request-URI without spaces.
_REQUEST_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9.!%*_+`'~-]* [^ \r\n]+ SIP/2\.0\r?\n")
_STATUS_LINE = re.compile(rb"SIP/2\.0 [1-6][0-9][0-9][ \r\n]")
_METHOD_PREFIX = re.compile(rb"[A-Za-z][A-Za-z0-9.!%*_+`'~-]*( [^ \r\n]*)?")
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)
_START_LINE_ANYWHERE = re.compile(
    rb"(?:^|\n)((?:[A-Za-z][A-Za-z0-9.!%*_+`'~-]* [^ \r\n]+ SIP/2\.0\r?\n)|(?:SIP/2\.0 [1-6][0-9][0-9] ))"
)

_MAX_START_LINE = 8192  # longer than any sane Request-URI; past it a stream is not SIP

YES = 1
NO = 0
MAYBE = -1


def sip_start_state(data: bytes | bytearray, pos: int = 0) -> int:
    """Does ``data[pos:]`` begin with a SIP start line? YES, NO, or MAYBE (need more bytes)."""
    if data.startswith(b"SIP/2.0 ", pos):
        return YES if _STATUS_LINE.match(data, pos) else (MAYBE if len(data) - pos < 13 else NO)
    if _REQUEST_LINE.match(data, pos):
        return YES
    nl = data.find(b"\n", pos, pos + _MAX_START_LINE)
    if nl >= 0 or len(data) - pos >= _MAX_START_LINE:
        return NO
    if len(data) - pos < 8 and b"SIP/2.0 ".startswith(bytes(data[pos:])):
        return MAYBE
    m = _METHOD_PREFIX.match(data, pos)
    return MAYBE if m is not None and m.end() == len(data) else NO


def is_sip_start(data: bytes | bytearray) -> bool:
    """True if ``data`` begins with a complete SIP request or status line."""
    return sip_start_state(data) == YES


class SipFramer:
    """Frames SIP messages out of one direction of a stream.

    ``feed`` returns the complete messages; bytes of an incomplete message
    stay buffered (at most ``max_buffer`` of them).
    """

    def __init__(self, max_buffer: int, errors: Counter[str], dropped: Counter[str]) -> None:
        self.max_buffer = max_buffer
        self.errors = errors
        self.dropped = dropped
        self._buf = bytearray()
        self._scanned = 0  # header-end search resumes here: a long header costs O(n), not O(n^2)
        self._skip = 0  # bytes of an oversized body still to discard
        self._hunting = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def resync(self) -> None:
        """Forget any partial message after a gap in the stream; hunt for the next start line."""
        if self._buf.strip(b"\r\n"):
            self.dropped["tcp.gap"] += 1
        self._buf.clear()
        self._scanned = 0
        self._skip = 0
        self._hunting = True

    def close(self) -> None:
        """The stream ended; count a message that never completed."""
        if self._buf.strip(b"\r\n") and not self._hunting:
            self.errors["tcp.incomplete_message"] += 1
        self._buf.clear()
        self._scanned = 0

    def feed(self, data: bytes) -> list[bytes]:
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            if self._hunting and not self._hunt():
                break
            # CRLF keep-alives (RFC 5626) may sit between messages.
            start = 0
            n = len(buf)
            while start < n and buf[start] in (13, 10):
                start += 1
            if start:
                del buf[:start]
                self._scanned = max(0, self._scanned - start)
                if not buf:
                    break
            state = sip_start_state(buf)
            if state == MAYBE:
                break
            if state == NO:
                self.errors["tcp.sip_garbage"] += 1
                self._hunting = True
                continue
            head_end = self._header_end()
            if head_end < 0:
                if len(buf) > self.max_buffer:
                    self.dropped["tcp.sip_header_too_long"] += 1
                    self._buf.clear()
                    self._scanned = 0
                    self._hunting = True
                break
            body_len = self._content_length(head_end)
            total = head_end + body_len
            if total > self.max_buffer:
                # Stay in sync by discarding exactly this message, without buffering it.
                self.dropped["tcp.sip_message_too_big"] += 1
                have = min(total, len(buf))
                del buf[:have]
                self._skip = total - have
                self._scanned = 0
                if self._skip:
                    break
                continue
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
            self._scanned = 0
        return out

    def _header_end(self) -> int:
        """Offset just past the blank line ending the header block, or -1."""
        buf = self._buf
        from_ = max(0, self._scanned - 3)
        i = buf.find(b"\r\n\r\n", from_)
        if i >= 0:
            return i + 4
        j = buf.find(b"\n\n", max(0, self._scanned - 1))  # bare-LF senders exist; RFC 3261 tolerates them
        if j >= 0:
            return j + 2
        self._scanned = len(buf)
        return -1

    def _content_length(self, head_end: int) -> int:
        m = _CONTENT_LENGTH.search(self._buf, 0, head_end)
        if m is None:
            # Mandatory on stream transports (RFC 3261 20.14); without it only an empty body is safe.
            self.errors["tcp.sip_no_content_length"] += 1
            return 0
        value = m.group(1).strip()
        if not value.isdigit() or len(value) > 9:
            self.errors["tcp.sip_bad_content_length"] += 1
            return 0
        return int(value)

    def _hunt(self) -> bool:
        """Drop bytes up to the next line that starts a SIP message; False if none is buffered yet."""
        buf = self._buf
        if sip_start_state(buf) == YES:
            self._hunting = False
            return True
        m = _START_LINE_ANYWHERE.search(buf)
        if m is None:
            # Keep only a tail that could be the beginning of a start line.
            keep = min(len(buf), _MAX_START_LINE)
            nl = buf.rfind(b"\n")
            cut = max(nl + 1, len(buf) - keep)
            del buf[:cut]
            self._scanned = 0
            return False
        del buf[: m.start(1)]
        self._scanned = 0
        self._hunting = False
        return True
