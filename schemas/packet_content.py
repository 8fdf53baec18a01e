"""How packet content appears in the wire models: text as escaped UTF-8, raw bytes as base64.

Text (``PacketText``): valid UTF-8 is kept as is; every byte that is not part of
valid UTF-8 becomes its four-character escape ``\\xNN``. Why this and not
latin-1: RFC 3261 says SIP text is UTF-8, so real UTF-8 names stay readable,
while a stray byte stays visibly a stray byte (latin-1 would turn a corrupted
Call-ID into a plausible different one, and mangle every UTF-8 name). The result
is plain Unicode without surrogates, so JSON, Kafka, PostgreSQL, Prometheus and
Slack all accept it, and the same bytes always give the same text (calls stay
keyed the same across restarts). ``\\xNN`` is ambiguous with a literal backslash
in the packet; where that matters the exact bytes are in ``raw`` (``RawBytes``,
standard base64 in JSON so any language or ``decode(x, 'base64')`` reads it).
"""

import base64
import binascii
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

__all__ = ["MAX_SIP_MESSAGE_BYTES", "PacketText", "RawBytes", "packet_text", "without_surrogates"]

#: Largest SIP message the collector hands over (its TCP/SCTP reassembly bound; a UDP datagram is smaller).
MAX_SIP_MESSAGE_BYTES = 256 * 1024

_SURROGATE = re.compile("[\ud800-\udfff]")


def packet_text(data: bytes) -> str:
    """Bytes from a packet as text: UTF-8 where valid, each other byte as ``\\xNN``."""
    return data.decode("utf-8", errors="backslashreplace")


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    # U+DC80..U+DCFF is how ``surrogateescape`` smuggles the byte 0x80..0xFF: give the byte back.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def without_surrogates(text: str) -> str:
    """The same text with any lone surrogate written as its escape (a JSON '\\udcff' included)."""
    if text.isascii():
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


def _from_base64(value: object) -> object:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"not base64: {exc}") from None
    return value


#: A string field holding text taken from a packet: never contains a surrogate.
PacketText = Annotated[str, AfterValidator(without_surrogates)]

#: The exact bytes of a message; standard base64 in JSON, bounded by ``MAX_SIP_MESSAGE_BYTES``.
RawBytes = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    Field(max_length=MAX_SIP_MESSAGE_BYTES),
    PlainSerializer(lambda raw: base64.b64encode(raw).decode("ascii"), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "contentEncoding": "base64",
            "maxLength": (MAX_SIP_MESSAGE_BYTES + 2) // 3 * 4,
            "description": "the exact message bytes, standard base64 (RFC 4648 section 4)",
        }
    ),
]
