"""SDP parser (RFC 4566 / RFC 3264) reduced to what media tracking needs, pure.

The line parsing is the compiled parser's (``native/src/sdp.rs``, see ``message.py`` for why
Rust); this module builds the ``SdpMedia`` events and finds the SDP in a (multipart) body.

Only the fields that decide where RTP goes and how to decode it are kept:
connection address, port, proto, payload types, rtpmap and direction.

Decisions:

* The first non-empty line must be ``v=0``; every line must be ``x=...``
  with a lowercase type letter. Anything else is garbage, not a lenient
  guess: ``SdpParseError('sdp.*')``.
* Text fields (``s=``, ``i=``) may carry any charset; the body is decoded
  as packet text (``callqual.schemas.packet_content``: stray bytes become
  ``\\xNN``), so that does not fail and no surrogate reaches an event, while
  the fields we use are validated explicitly.
* A media-level ``c=`` overrides the session one; without any, the
  connection is None. Multicast ``/ttl[/count]`` suffixes are dropped.
  ``c=IN IP4 0.0.0.0`` (RFC 2543 hold) is kept verbatim as ``0.0.0.0`` and
  the direction is left as signalled: whether it means hold is the
  dialog's decision, not the parser's.
* Port 0 (rejected or disabled stream, RFC 3264 6) is kept with port 0.
* Direction attributes at media level override the session level;
  the default is sendrecv.
* For RTP profiles (``RTP/AVP``, ``UDP/TLS/RTP/SAVPF``...) every format
  must be a payload type 0..127; other profiles (``udptl``, ``TCP/MSRP``...) have no payload types.
* ``sdp_body`` finds the SDP in a plain body or inside multipart/mixed,
  /alternative or /related (RFC 2046), e.g. SIP-I with ISUP + SDP.
"""

from __future__ import annotations

import functools
import ipaddress

import callqual_native as _native

from callqual.collector.errors import SdpParseError
from callqual.collector.sip.events import SDP_MEDIA_FIELDS
from callqual.collector.sip.message import SipMessage, parse_params
from callqual.schemas import SdpMedia
from callqual.schemas.packet_content import packet_text
from callqual.schemas.prebuilt import prebuilt

__all__ = ["MAX_MEDIA", "MAX_MULTIPART_DEPTH", "SDP_REASONS", "parse_sdp", "sdp_body"]

#: Every reason ``parse_sdp`` and ``sdp_body`` may raise.
SDP_REASONS = frozenset(
    {
        "sdp.empty",
        "sdp.no_version",
        "sdp.bad_version",
        "sdp.bad_line",
        "sdp.bad_media",
        "sdp.too_many_media",
        "sdp.bad_connection",
        "sdp.bad_rtpmap",
        "sdp.bad_multipart",
        "sdp.parser_fault",
    }
)

#: Largest number of m= sections accepted.
MAX_MEDIA = 64
#: How deep multipart bodies may nest before we give up.
MAX_MULTIPART_DEPTH = 3


def parse_sdp(body: bytes, anomalies: list[str] | None = None) -> list[SdpMedia]:
    """Parse an SDP body into its media sections; raise SdpParseError on garbage.

    With an ``anomalies`` list, a malformed line that does not change where the
    media goes (an unreadable ``a=rtpmap``, a line that is not ``x=...``) is
    skipped and its reason appended, as Wireshark and real endpoints do: one
    mangled codec line must not hide the RTP of the whole call. Without it,
    every deviation raises.
    """
    try:
        sections, found = _native.parse_sdp(bytes(body), anomalies is not None)
    except _native.ParseError as exc:
        reason, detail, found = exc.args
        if anomalies is not None:
            anomalies.extend(found)
        raise SdpParseError(reason, detail) from None
    if anomalies is not None:
        anomalies.extend(found)
    # Built without re-validation: the text is packet text (no surrogates), the numbers were
    # range-checked by the parser; validating again was a tenth of the per-message cost (issue 14).
    return [
        prebuilt(
            SdpMedia,
            {
                "media": media,
                "connection_ip": connection,
                "port": port,
                "proto": proto,
                "payload_types": payload_types,
                "rtpmap": rtpmap,
                "direction": direction,
            },
            SDP_MEDIA_FIELDS,
        )
        for media, connection, port, proto, payload_types, rtpmap, direction in sections
    ]


@functools.lru_cache(maxsize=4096)
def _canonical_ipv6(address: str) -> str | None:
    """An IPv6 literal as ``ipaddress`` spells it (as the packet decoder does), None if it is not one."""
    try:
        return str(ipaddress.IPv6Address(address))
    except ValueError:
        return None


_native.register_ipv6_canonicaliser(_canonical_ipv6)


def sdp_body(msg: SipMessage) -> bytes | None:
    """The application/sdp body of a message, looking inside multipart bodies.

    Returns None when there is no SDP (no body, other content types, or a
    multipart without an SDP part). A multipart body that cannot be split
    raises ``SdpParseError('sdp.bad_multipart')``.
    """
    if not msg.body:
        return None
    content_type = msg.content_type
    if content_type is None:
        return None
    return _find_sdp(content_type, msg.body, 0)


def _find_sdp(content_type: str, body: bytes, depth: int) -> bytes | None:
    mime, _, params_text = content_type.partition(";")
    mime = mime.strip().lower()
    if mime == "application/sdp":
        return body or None
    if not mime.startswith("multipart/"):
        return None
    if depth >= MAX_MULTIPART_DEPTH:
        raise SdpParseError("sdp.bad_multipart", "nested too deep")
    boundary = parse_params(params_text).get("boundary")
    if not boundary or len(boundary) > 70:
        raise SdpParseError("sdp.bad_multipart", "missing or bad boundary")
    for part_type, part_body in _split_multipart(body, boundary.encode("utf-8")):
        found = _find_sdp(part_type, part_body, depth + 1)
        if found is not None:
            return found
    return None


def _split_multipart(body: bytes, boundary: bytes) -> list[tuple[str, bytes]]:
    """Split an RFC 2046 multipart body into (Content-Type, part body) pairs.

    The CRLF before each delimiter belongs to the delimiter, not the part.
    A missing close-delimiter is tolerated (the last part runs to the end):
    SIP UAs often omit it and the datagram boundary is unambiguous.
    """
    delimiter = b"--" + boundary
    if body.startswith(delimiter):
        pos = 0
    else:
        pos = body.find(b"\n" + delimiter)
        if pos < 0:
            raise SdpParseError("sdp.bad_multipart", "boundary not found")
        pos += 1
    parts: list[tuple[str, bytes]] = []
    while True:
        after = pos + len(delimiter)
        if body[after : after + 2] == b"--":
            break
        line_end = body.find(b"\n", after)
        if line_end < 0:
            break
        start = line_end + 1
        nxt = body.find(b"\n" + delimiter, start)
        end = len(body) if nxt < 0 else nxt
        raw = body[start:end]
        if nxt >= 0 and raw.endswith(b"\r"):
            raw = raw[:-1]
        parts.append(_split_part(raw))
        if nxt < 0:
            break
        pos = nxt + 1
    if not parts:
        raise SdpParseError("sdp.bad_multipart", "no parts")
    return parts


def _split_part(raw: bytes) -> tuple[str, bytes]:
    """Return (Content-Type, body) of one MIME part; the default type is text/plain."""
    if raw.startswith((b"\r\n", b"\n")):
        return "text/plain", raw[2:] if raw.startswith(b"\r\n") else raw[1:]
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, content = raw[:crlf], raw[crlf + 4 :]
    elif lf >= 0:
        head, content = raw[:lf], raw[lf + 2 :]
    else:
        raise SdpParseError("sdp.bad_multipart", "part without header end")
    content_type = "text/plain"
    for line in packet_text(head).split("\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "content-type":
            content_type = value.strip()
            break
    return content_type, content
