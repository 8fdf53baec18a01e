"""SDP parser (RFC 4566 / RFC 3264) reduced to what media tracking needs, pure.

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

from callqual.collector.errors import SdpParseError
from callqual.collector.sip.message import SipMessage, parse_params
from callqual.schemas import SdpMedia
from callqual.schemas.events import Direction
from callqual.schemas.packet_content import packet_text

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
    }
)

#: Largest number of m= sections accepted.
MAX_MEDIA = 64
#: How deep multipart bodies may nest before we give up.
MAX_MULTIPART_DEPTH = 3

_DIRECTIONS: dict[str, Direction] = {
    "sendrecv": "sendrecv",
    "sendonly": "sendonly",
    "recvonly": "recvonly",
    "inactive": "inactive",
}
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


class _Media:
    """Mutable builder for one m= section while its attribute lines are read."""

    __slots__ = ("connection", "direction", "media", "payload_types", "port", "proto", "rtpmap")

    def __init__(self, media: str, port: int, proto: str, payload_types: list[int]) -> None:
        self.media = media
        self.port = port
        self.proto = proto
        self.payload_types = payload_types
        self.connection: str | None = None
        self.direction: Direction | None = None
        self.rtpmap: dict[int, str] = {}


def parse_sdp(body: bytes, anomalies: list[str] | None = None) -> list[SdpMedia]:
    """Parse an SDP body into its media sections; raise SdpParseError on garbage.

    With an ``anomalies`` list, a malformed line that does not change where the
    media goes (an unreadable ``a=rtpmap``, a line that is not ``x=...``) is
    skipped and its reason appended, as Wireshark and real endpoints do: one
    mangled codec line must not hide the RTP of the whole call. Without it,
    every deviation raises.
    """
    text = packet_text(body)
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    first = 0
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first >= len(lines):
        raise SdpParseError("sdp.empty")
    if not lines[first].startswith("v="):
        raise SdpParseError("sdp.no_version", lines[first][:32])
    if lines[first][2:].strip() != "0":
        raise SdpParseError("sdp.bad_version", lines[first][:32])

    session_connection: str | None = None
    session_direction: Direction = "sendrecv"
    media: list[_Media] = []
    current: _Media | None = None
    for line in lines[first + 1 :]:
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            if anomalies is None:
                raise SdpParseError("sdp.bad_line", line[:32])
            anomalies.append("sdp.bad_line")
            continue
        kind = line[0]
        value = line[2:]
        if kind == "m":
            if len(media) >= MAX_MEDIA:
                raise SdpParseError("sdp.too_many_media", f"more than {MAX_MEDIA}")
            current = _parse_m_line(value)
            media.append(current)
        elif kind == "c":
            address = _parse_c_line(value)
            if current is None:
                session_connection = address
            else:
                current.connection = address
        elif kind == "a":
            name, _, attr_value = value.partition(":")
            direction = _DIRECTIONS.get(name.strip())
            if direction is not None:
                if current is None:
                    session_direction = direction
                else:
                    current.direction = direction
            elif name == "rtpmap" and current is not None:
                try:
                    pt, encoding = _parse_rtpmap(attr_value)
                except SdpParseError as exc:
                    if anomalies is None:
                        raise
                    anomalies.append(exc.reason)
                    continue
                current.rtpmap.setdefault(pt, encoding)

    # Built without re-validation: the text is ``packet_text``'s (no surrogates), the numbers were
    # range-checked above; validating again was a tenth of the per-message cost (issue 14).
    return [
        SdpMedia.trusted(
            media=m.media,
            connection_ip=m.connection if m.connection is not None else session_connection,
            port=m.port,
            proto=m.proto,
            payload_types=m.payload_types,
            rtpmap=m.rtpmap,
            direction=m.direction or session_direction,
        )
        for m in media
    ]


def _parse_m_line(value: str) -> _Media:
    fields = value.split()
    if len(fields) < 3:
        raise SdpParseError("sdp.bad_media", value[:64])
    media_type, port_text, proto = fields[0], fields[1], fields[2]
    port_part, slash, count_part = port_text.partition("/")
    if not _is_small_int(port_part, 5) or int(port_part) > 65535:
        raise SdpParseError("sdp.bad_media", f"bad port {port_text[:16]!r}")
    if slash and (not _is_small_int(count_part, 5) or int(count_part) == 0):
        raise SdpParseError("sdp.bad_media", f"bad port count {port_text[:16]!r}")
    payload_types: list[int] = []
    if "RTP/" in proto.upper():
        for fmt in fields[3:]:
            if not _is_small_int(fmt, 3) or int(fmt) > 127:
                raise SdpParseError("sdp.bad_media", f"bad payload type {fmt[:16]!r}")
            payload_types.append(int(fmt))
    return _Media(media_type, int(port_part), proto, payload_types)


def _parse_c_line(value: str) -> str:
    fields = value.split()
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise SdpParseError("sdp.bad_connection", value[:64])
    address, _, suffix = fields[2].partition("/")
    if suffix and not all(_is_small_int(part, 5) for part in suffix.split("/", 1)):
        raise SdpParseError("sdp.bad_connection", value[:64])
    canonical = _canonical_ip(address)
    if canonical is not None:
        return canonical
    # RFC 4566 allows an FQDN as connection-address.
    if address and all(ch in _HOST_CHARS for ch in address) and any(ch.isalpha() for ch in address):
        return address.lower()
    raise SdpParseError("sdp.bad_connection", value[:64])


def _canonical_ip(address: str) -> str | None:
    """The address in canonical form, None when it is not an IP literal.

    A plain dotted quad (the common case) is already canonical and is checked
    by hand: ``ipaddress`` took a twentieth of the per-message time (issue 14).
    """
    parts = address.split(".")
    if len(parts) == 4 and all(
        part.isdigit()
        and part.isascii()
        and len(part) <= 3
        and (part == "0" or part[0] != "0")
        and int(part) <= 255
        for part in parts
    ):
        return address
    return _canonical_ip_slow(address)


@functools.lru_cache(maxsize=4096)
def _canonical_ip_slow(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _parse_rtpmap(value: str) -> tuple[int, str]:
    pt_text, _, encoding = value.strip().partition(" ")
    encoding = encoding.strip()
    if not _is_small_int(pt_text, 3) or int(pt_text) > 127:
        raise SdpParseError("sdp.bad_rtpmap", value[:64])
    parts = encoding.split("/")
    if len(parts) not in (2, 3) or not parts[0] or not _is_small_int(parts[1], 7):
        raise SdpParseError("sdp.bad_rtpmap", value[:64])
    if len(parts) == 3 and not _is_small_int(parts[2], 3):
        raise SdpParseError("sdp.bad_rtpmap", value[:64])
    return int(pt_text), encoding


def _is_small_int(text: str, max_digits: int) -> bool:
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


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
