"""WebSocket (RFC 6455) message framing for SIP over WebSocket (RFC 7118).

Browsers and WebRTC gateways carry SIP inside WebSocket messages, one SIP
message per WebSocket message. This turns one direction of the TCP byte
stream, after the HTTP upgrade, into complete unmasked messages: masking is
undone, fragmented messages are joined, control frames are dropped, and
per-message deflate (RFC 7692) is inflated so compressed SIP is not lost.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

__all__ = ["WebSocketFramer", "is_upgrade_request", "is_upgrade_response"]

_OP_CONT = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8

_UPGRADE_HEADER = re.compile(rb"^upgrade[ \t]*:[ \t]*websocket[ \t]*\r?$", re.I | re.M)
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def is_upgrade_request(head: bytes | bytearray) -> bool:
    """``head`` is a complete HTTP header block; is it a WebSocket opening handshake?"""
    return head.startswith(b"GET ") and _UPGRADE_HEADER.search(head) is not None


def is_upgrade_response(head: bytes | bytearray) -> bool:
    return head.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101"))


def unmask(payload: bytes | bytearray, key: bytes) -> bytes:
    """XOR with the 4-byte masking key, done on one big integer instead of byte by byte."""
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


class WebSocketFramer:
    """Frames WebSocket messages out of one direction of a stream that is past its handshake."""

    def __init__(self, max_message: int, errors: Counter[str], dropped: Counter[str]) -> None:
        self.max_message = max_message
        self.errors = errors
        self.dropped = dropped
        self.closed = False
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._parts_len = 0
        self._msg_compressed = False
        self._in_message = False
        self._discarding = False  # the current fragmented message outgrew max_message
        self._inflater: zlib._Decompress | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf) + self._parts_len

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        while not self.closed and pos + 2 <= n:
            b0, b1 = buf[pos], buf[pos + 1]
            fin, rsv1, opcode = b0 & 0x80, b0 & 0x40, b0 & 0x0F
            masked = b1 & 0x80
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if pos + 4 > n:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                hdr = 4
            elif length == 127:
                if pos + 10 > n:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            if masked:
                hdr += 4
            if length > self.max_message:
                # A frame we refuse to buffer desynchronises nothing, but we cannot
                # skip it cheaply without tracking it; give up on the connection.
                self.dropped["ws.frame_too_big"] += 1
                self.closed = True
                break
            if pos + hdr + length > n:
                break
            payload = bytes(buf[pos + hdr : pos + hdr + length])
            if masked:
                payload = unmask(payload, bytes(buf[pos + hdr - 4 : pos + hdr]))
            pos += hdr + length
            if opcode >= 0x8:
                if opcode == _OP_CLOSE:
                    self.closed = True
                continue  # ping/pong/close carry no SIP
            if opcode == _OP_CONT:
                if not self._in_message:
                    self.errors["ws.unexpected_continuation"] += 1
                    continue
            elif opcode in (_OP_TEXT, _OP_BINARY):
                if self._in_message:
                    self.errors["ws.interrupted_message"] += 1
                self._in_message = True
                self._discarding = False
                self._parts.clear()
                self._parts_len = 0
                self._msg_compressed = bool(rsv1)
            else:
                self.errors["ws.bad_opcode"] += 1
                continue
            if not self._discarding:
                if self._parts_len + length > self.max_message:
                    self.dropped["ws.message_too_big"] += 1
                    self._discarding = True
                    self._parts.clear()
                    self._parts_len = 0
                else:
                    self._parts.append(payload)
                    self._parts_len += length
            if fin:
                self._in_message = False
                if not self._discarding:
                    msg = b"".join(self._parts)
                    if self._msg_compressed:
                        inflated = self._inflate(msg)
                        if inflated is not None:
                            out.append(inflated)
                    else:
                        out.append(msg)
                self._parts.clear()
                self._parts_len = 0
                self._discarding = False
        if pos:
            del buf[:pos]
        return out

    def _inflate(self, msg: bytes) -> bytes | None:
        # One inflater per direction: with context takeover later messages refer back to earlier ones.
        if self._inflater is None:
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = self._inflater.decompress(msg + _DEFLATE_TAIL, self.max_message)
        except zlib.error:
            self.errors["ws.bad_deflate"] += 1
            self._inflater = None
            return None
        if self._inflater.unconsumed_tail:
            self.dropped["ws.message_too_big"] += 1
            self._inflater = None
            return None
        return data
