"""SIP message parser (RFC 3261 section 7, 20 and 25), pure and bounded.

Decisions, so that every caller gets the same answer for the same bytes:

* The input is one complete message: a UDP datagram, or a message framed by
  the TCP/WebSocket layer. Leading CR/LF are skipped (RFC 3261 7.5 and the
  RFC 5626 ``CRLFCRLF`` keep-alive); a datagram of only CR/LF is
  ``sip.empty``. Any other junk before the start-line makes the datagram not
  SIP (``looks_like_sip`` is False, ``parse_sip`` raises
  ``sip.bad_start_line``): like Wireshark's heuristic we never scan forward
  for a start-line, because a hit in the middle of random bytes is more
  likely a false positive than a real message.
* A header section that is not closed by an empty line is accepted when the
  data ends with a line terminator (buggy UAs send ``...\\r\\n`` only; the
  datagram boundary is the end of the message, and Wireshark decodes the
  same way). If the last line has no terminator at all the message was
  most likely truncated by the capture snap length: ``sip.no_header_end``.
* Bare LF line endings are accepted (robustness, as Kamailio and Wireshark).
* Content-Length (RFC 3261 18.3): a body shorter than it is
  ``sip.content_length_mismatch``; extra bytes after it are discarded, as
  18.3 mandates for datagrams. Without the header the body is the rest of
  the data (a stream framer has already cut the message). Two different
  Content-Length values are rejected: that is how request smuggling starts.
* Call-ID, CSeq, From and To are required (``sip.missing_*``): every later
  stage keys calls and transactions on them. Via and Max-Forwards are not,
  so that messages captured behind odd middleboxes are still seen.
* The start-line and headers must be UTF-8 (RFC 3261 7.3.1), else ``sip.not_utf8``
  (an anomaly, once per message: each stray byte is read as its ``\\xNN`` escape, the one
  representation of packet text, ``callqual.schemas.packet_content``).
  The body is kept as bytes.
* Sizes are bounded (``max_header_bytes``, ``max_headers``) because
  attackers send megabyte header sections; all scanning is linear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from callqual.collector.errors import SipParseError
from callqual.schemas.packet_content import packet_text

__all__ = [
    "COMPACT_FORMS",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "SIP_REASONS",
    "NameAddr",
    "SipMessage",
    "Via",
    "canonical_header_name",
    "looks_like_sip",
    "parse_name_addr",
    "parse_params",
    "parse_sip",
    "parse_via",
    "split_header_values",
]

#: Every reason ``parse_sip`` may raise, so counters can be registered up front.
SIP_REASONS = frozenset(
    {
        "sip.empty",
        "sip.bad_start_line",
        "sip.bad_version",
        "sip.bad_status_code",
        "sip.header_too_long",
        "sip.no_header_end",
        "sip.not_utf8",
        "sip.bad_header",
        "sip.too_many_headers",
        "sip.missing_call_id",
        "sip.missing_cseq",
        "sip.bad_cseq",
        "sip.missing_from",
        "sip.bad_from",
        "sip.missing_to",
        "sip.bad_to",
        "sip.bad_content_length",
        "sip.content_length_mismatch",
    }
)

#: Largest header section (start-line included) we accept, in bytes.
MAX_HEADER_BYTES = 64 * 1024
#: Largest number of header lines (after unfolding) we accept.
MAX_HEADERS = 256

#: RFC 3261 7.3.3 and the IANA registry of compact header names.
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "v": "Via",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}

# Names whose registered spelling is not plain Title-Case-Per-Dash.
_SPECIAL_NAMES = [
    "Call-ID",
    "CSeq",
    "RSeq",
    "RAck",
    "WWW-Authenticate",
    "MIME-Version",
    "Content-ID",
    "SIP-ETag",
    "SIP-If-Match",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "P-Charging-Vector",
    "P-Charging-Function-Addresses",
    "P-Access-Network-Info",
    "P-Visited-Network-ID",
    "P-Called-Party-ID",
    "P-Early-Media",
    "P-DCS-Billing-Info",
    "P-User-Database",
    "X-RTP-Stat",
    "X-Asterisk-HangupCause",
    "X-Asterisk-HangupCauseCode",
]

_CANONICAL: dict[str, str] = {name.lower(): name for name in _SPECIAL_NAMES}
_CANONICAL.update({short: full for short, full in COMPACT_FORMS.items()})
for _full in COMPACT_FORMS.values():
    _CANONICAL.setdefault(_full.lower(), _full)
# Bounded so that a flood of random header names cannot grow it forever.
_CANONICAL_CACHE_LIMIT = 4096
_canonical_cache: dict[str, str] = {}

# Headers whose grammar is a comma-separated list (RFC 3261 7.3.1 allows
# combining them). Others (Date, WWW-Authenticate, ...) contain commas that
# are not separators.
_LIST_HEADERS = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "path",
        "service-route",
        "allow",
        "allow-events",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-encoding",
        "content-language",
        "alert-info",
        "call-info",
        "error-info",
        "in-reply-to",
        "reason",
        "warning",
        "history-info",
        "p-asserted-identity",
        "p-preferred-identity",
        "accept-contact",
        "reject-contact",
        "request-disposition",
        "privacy",
        "security-client",
        "security-server",
        "security-verify",
    }
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")

# Start-line shapes. No nested quantifiers: the URI class excludes SP, so the
# match is linear in the line length.
_REQUEST_LINE_RE = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]{1,32} [^ \r\n]{1,8192} SIP/2\.0\r?(?:\n|$)", re.I)
_STATUS_LINE_RE = re.compile(rb"SIP/2\.0 [1-6][0-9][0-9](?:[ \r\n]|$)", re.I)

_CSEQ_MAX = 2**32 - 1


class NameAddr(NamedTuple):
    """A parsed From/To/Contact/Route value (RFC 3261 20.10 ``name-addr / addr-spec``)."""

    display: str | None
    uri: str
    params: dict[str, str | None]


class Via(NamedTuple):
    """One parsed via-parm (RFC 3261 20.42); NAT checks need received/rport."""

    protocol: str
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")


def canonical_header_name(name: str) -> str:
    """Map a header name (any case, compact or long) to its registered spelling."""
    lower = name.lower()
    known = _CANONICAL.get(lower)
    if known is not None:
        return known
    cached = _canonical_cache.get(lower)
    if cached is not None:
        return cached
    canon = "-".join(part[:1].upper() + part[1:] for part in lower.split("-"))
    if len(_canonical_cache) < _CANONICAL_CACHE_LIMIT:
        _canonical_cache[lower] = canon
    return canon


def looks_like_sip(data: bytes) -> bool:
    """Cheap first-line test for routing a datagram to ``parse_sip``.

    Only the start-line is examined, after skipping CR/LF keep-alives;
    anything else before it (see the module docstring) means "not SIP".
    """
    start = 0
    n = len(data)
    while start < n and data[start] in (13, 10):
        start += 1
    if n - start < 11:
        return False
    head = data[start : start + 8300]
    if head[:8].upper() == b"SIP/2.0 ":
        return _STATUS_LINE_RE.match(head) is not None
    return _REQUEST_LINE_RE.match(head) is not None


def split_header_values(value: str) -> list[str]:
    """Split a comma-separated header value, respecting quotes and ``<...>``.

    Commas inside quoted display names or inside angle-bracketed URIs are
    not separators. Empty elements are dropped.
    """
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    out: list[str] = []
    start = 0
    in_quote = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            part = value[start:i].strip()
            if part:
                out.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        out.append(part)
    return out


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` generic-params; names lowercased, first wins.

    Quoted values may contain ``;``. Values keep their case (tags and
    branches are compared case-sensitively by RFC 3261).
    """
    params: dict[str, str | None] = {}
    if '"' not in text:
        for part in text.split(";"):
            name, eq, raw_value = part.partition("=")
            name = name.strip().lower()
            if name and name not in params:
                params[name] = raw_value.strip() if eq else None
        return params
    n = len(text)
    i = 0
    while i < n:
        # skip separators and whitespace
        while i < n and text[i] in "; \t":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and text[j] not in "=;":
            j += 1
        name = text[i:j].strip().lower()
        value: str | None = None
        if j < n and text[j] == "=":
            k = j + 1
            while k < n and text[k] in " \t":
                k += 1
            if k < n and text[k] == '"':
                end, quoted = _scan_quoted(text, k)
                value = quoted
                k = end
                while k < n and text[k] != ";":
                    k += 1
            else:
                start = k
                while k < n and text[k] != ";":
                    k += 1
                value = text[start:k].strip()
            j = k
        if name and name not in params:
            params[name] = value
        i = j
    return params


def _scan_quoted(text: str, start: int) -> tuple[int, str]:
    """Read the quoted-string opening at ``text[start]``; return (index after it, unescaped)."""
    end = text.find('"', start + 1)
    if end < 0:
        raise ValueError("unterminated quoted string")
    if "\\" not in text[start + 1 : end]:
        return end + 1, text[start + 1 : end]
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return i + 1, "".join(out)
        out.append(ch)
        i += 1
    raise ValueError("unterminated quoted string")


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``[display] <uri>;params`` or ``uri;params`` (RFC 3261 20.10).

    Without angle brackets the URI ends at the first ``;``: the parameters
    belong to the header (that is where ``tag`` lives), not to the URI.
    Raises ValueError on an unterminated quote or ``<``.
    """
    s = value.strip()
    display: str | None = None
    if s.startswith('"'):
        end, display = _scan_quoted(s, 0)
        rest = s[end:].lstrip()
        if not rest.startswith("<"):
            raise ValueError("display name without <uri>")
        gt = rest.find(">")
        if gt < 0:
            raise ValueError("unterminated <uri>")
        return NameAddr(display, rest[1:gt].strip(), parse_params(rest[gt + 1 :]))
    lt = s.find("<")
    semi = s.find(";")
    if lt >= 0 and (semi < 0 or lt < semi):
        gt = s.find(">", lt)
        if gt < 0:
            raise ValueError("unterminated <uri>")
        token_display = s[:lt].strip()
        display = token_display or None
        return NameAddr(display, s[lt + 1 : gt].strip(), parse_params(s[gt + 1 :]))
    if semi < 0:
        uri = s
        params: dict[str, str | None] = {}
    else:
        uri = s[:semi].strip()
        params = parse_params(s[semi:])
    if not uri or " " in uri or ">" in uri:
        raise ValueError("bad addr-spec")
    return NameAddr(None, uri, params)


def parse_via(value: str) -> Via:
    """Parse one via-parm: ``SIP / 2.0 / UDP host[:port];params``. Raises ValueError."""
    semi = value.find(";")
    head = value if semi < 0 else value[:semi]
    params = {} if semi < 0 else parse_params(value[semi:])
    # LWS is allowed around the slashes of sent-protocol.
    parts = [p.strip() for p in head.split("/", 2)]
    if len(parts) != 3:
        raise ValueError("bad sent-protocol")
    proto_name, version, rest = parts
    fields = rest.split(None, 1)
    if len(fields) != 2 or not proto_name or not version:
        raise ValueError("bad sent-protocol")
    transport, sent_by = fields[0].upper(), fields[1].strip()
    if " " in sent_by or not sent_by:
        # a trailing comment "(...)" is allowed by the grammar; drop it
        sent_by = sent_by.split(None, 1)[0] if sent_by else ""
    host, port = _split_hostport(sent_by)
    if not host:
        raise ValueError("bad sent-by")
    return Via(f"{proto_name.upper()}/{version}", transport, host, port, params)


def _split_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("bad IPv6 reference")
        host, tail = text[: end + 1], text[end + 1 :]
        if not tail:
            return host, None
        if not tail.startswith(":"):
            raise ValueError("bad port")
        port_text = tail[1:]
    else:
        host, sep, port_text = text.partition(":")
        if not sep:
            return host, None
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        raise ValueError("bad port")
    return host, int(port_text)


@dataclass(slots=True)
class SipMessage:
    """One parsed SIP request or response.

    ``headers`` keeps every header line in wire order (names canonical,
    compact forms expanded, folded lines joined); the properties give the
    parsed values the pipeline needs. Call-ID, CSeq, From and To were
    validated by ``parse_sip``; the other properties return None when the
    header is absent or malformed, so reading them never raises.
    """

    is_request: bool
    method: str | None
    request_uri: str | None
    status_code: int | None
    reason_phrase: str | None
    first_line: str
    headers: list[tuple[str, str]]
    body: bytes
    call_id: str
    cseq_num: int
    cseq_method: str
    from_addr: NameAddr
    to_addr: NameAddr
    content_length: int | None
    #: total size of the message on the wire, body included
    size: int
    #: Deviations from the grammar that were tolerated (reason strings); empty for clean SIP
    anomalies: list[str] = field(default_factory=list)
    _index: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """First value of a header (``name`` may be any case or a compact form)."""
        values = self._index.get(canonical_header_name(name).lower())
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        """Every occurrence of a header, one entry per header line, in wire order."""
        return list(self._index.get(canonical_header_name(name).lower(), ()))

    def header_list(self, name: str) -> list[str]:
        """Every element of a list-valued header (Via, Contact, Route...), split on commas.

        Headers whose grammar is not a list are returned one per line,
        unsplit (a Date or WWW-Authenticate value contains commas).
        """
        key = canonical_header_name(name).lower()
        values = self._index.get(key, [])
        if key not in _LIST_HEADERS:
            return list(values)
        out: list[str] = []
        for value in values:
            out.extend(split_header_values(value))
        return out

    def _first(self, key: str) -> str | None:
        """First value of the header indexed as ``key`` (already canonical, lower case)."""
        values = self._index.get(key)
        return values[0] if values else None

    def _first_element(self, key: str) -> str | None:
        """``header_list(key)[0]`` without splitting every line: the hot path wants the top one only."""
        for value in self._index.get(key, ()):
            parts = split_header_values(value)
            if parts:
                return parts[0]
        return None

    @property
    def from_uri(self) -> str:
        return self.from_addr.uri

    @property
    def from_tag(self) -> str | None:
        return self.from_addr.params.get("tag")

    @property
    def from_display(self) -> str | None:
        return self.from_addr.display

    @property
    def to_uri(self) -> str:
        return self.to_addr.uri

    @property
    def to_tag(self) -> str | None:
        return self.to_addr.params.get("tag")

    @property
    def to_display(self) -> str | None:
        return self.to_addr.display

    @property
    def via(self) -> list[str]:
        """Every via-parm, top (most recent hop) first."""
        return self.header_list("Via")

    @property
    def vias(self) -> list[Via]:
        """Parsed via-parms, top first; malformed ones are left out."""
        out: list[Via] = []
        for value in self.via:
            try:
                out.append(parse_via(value))
            except ValueError:
                continue
        return out

    @property
    def via_branch(self) -> str | None:
        top = self._first_element("via")
        if top is None:
            return None
        try:
            return parse_via(top).branch
        except ValueError:
            return None

    @property
    def user_agent(self) -> str | None:
        """User-Agent of a request, or Server of a response (either if present)."""
        return self._first("user-agent") or self._first("server")

    @property
    def contact_uri(self) -> str | None:
        contact = self._first_element("contact")
        if contact is None:
            return None
        if contact == "*":
            return "*"
        try:
            return parse_name_addr(contact).uri
        except ValueError:
            return None

    @property
    def reason_header(self) -> str | None:
        return self._first("reason")

    @property
    def content_type(self) -> str | None:
        return self._first("content-type")

    @property
    def max_forwards(self) -> int | None:
        value = self.header("Max-Forwards")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or len(value) > 3:
            return None
        return int(value)

    def key_headers(self) -> dict[str, str]:
        """The headers an analyst needs to recognise the message, for alert evidence."""
        out: dict[str, str] = {}
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = self.header(name)
            if value is not None:
                out[name] = value
        vias = self.via
        if vias:
            out["Via"] = vias[0]
        ua = self.user_agent
        if ua is not None:
            out["User-Agent"] = ua
        for name in ("Contact", "Reason", "Content-Type"):
            value = self.header(name)
            if value is not None:
                out[name] = value
        return out


# Raw header name as written -> (canonical name, index key). Only valid
# names are cached, and the cache is bounded (attackers choose names).
_NAME_CACHE: dict[str, tuple[str, str]] = {}


def _header_name(raw_name: str) -> tuple[str, str]:
    stripped = raw_name.rstrip(" \t")
    if not _TOKEN_RE.fullmatch(stripped):
        raise SipParseError("sip.bad_header", f"bad name {stripped[:32]!r}")
    name = canonical_header_name(stripped)
    names = (name, name.lower())
    if len(_NAME_CACHE) < _CANONICAL_CACHE_LIMIT:
        _NAME_CACHE[raw_name] = names
    return names


def _find_header_end(data: bytes, limit: int) -> tuple[int, int]:
    """Return (end of header section, start of body) or raise.

    The header section ends at the first empty line; both CRLF and bare LF
    are recognised.
    """
    window = limit + 4
    crlf = data.find(b"\n\r\n", 0, window)
    lf = data.find(b"\n\n", 0, window)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 1, crlf + 3
    if lf >= 0:
        return lf + 1, lf + 2
    if len(data) > limit:
        raise SipParseError("sip.header_too_long", f"no end of headers within {limit} bytes")
    if data.endswith(b"\n"):
        return len(data), len(data)
    raise SipParseError("sip.no_header_end", "header section not terminated (truncated?)")


def _parse_start_line(line: str) -> tuple[bool, str | None, str | None, int | None, str | None]:
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        if version.upper() != "SIP/2.0":
            raise SipParseError("sip.bad_version", version[:32])
        code_text, _, reason = rest.partition(" ")
        if len(code_text) != 3 or not code_text.isdigit() or not code_text.isascii():
            raise SipParseError("sip.bad_status_code", code_text[:32])
        code = int(code_text)
        if not 100 <= code <= 699:
            raise SipParseError("sip.bad_status_code", code_text)
        return False, None, None, code, reason.strip()
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipParseError("sip.bad_start_line", line[:64])
    method, uri, version = parts
    if not _TOKEN_RE.fullmatch(method):
        raise SipParseError("sip.bad_start_line", f"bad method {method[:32]!r}")
    if ":" not in uri:
        raise SipParseError("sip.bad_start_line", f"bad Request-URI {uri[:64]!r}")
    if version.upper() != "SIP/2.0":
        if version[:4].upper() == "SIP/":
            raise SipParseError("sip.bad_version", version[:32])
        raise SipParseError("sip.bad_start_line", line[:64])
    return True, method, uri, None, None


def parse_sip(
    data: bytes,
    *,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_headers: int = MAX_HEADERS,
    strict: bool = False,
) -> SipMessage:
    """Parse one SIP message; raise SipParseError with a stable reason if it is not usable SIP.

    Real networks carry SIP that bends the grammar: Latin-1 display names, a
    header line without a colon, a Content-Length that lies. Like Wireshark and
    like the proxies that route such traffic, the default is to keep what can
    be read and to record each deviation in ``SipMessage.anomalies`` (counted
    by the collector, seen by the ``malformed_sip`` rule). A message without a
    usable start line, Call-ID, CSeq, From or To is still rejected: nothing
    downstream could key it. ``strict=True`` turns every anomaly into an error.
    """
    anomalies: list[str] = []

    def anomaly(reason: str, detail: str) -> None:
        if strict:
            raise SipParseError(reason, detail)
        anomalies.append(reason)

    size = len(data)
    start = 0
    while start < size and data[start] in (13, 10):
        start += 1
    if start >= size:
        raise SipParseError("sip.empty", "keep-alive" if size else "")
    if start:
        data = data[start:]
    # The start-line is judged first, so that non-SIP data gets the reason
    # that says so rather than a complaint about its "headers".
    line_end = data.find(b"\n", 0, max_header_bytes)
    if line_end < 0 and len(data) > max_header_bytes:
        raise SipParseError("sip.header_too_long", f"start-line longer than {max_header_bytes} bytes")
    raw_first = data if line_end < 0 else data[:line_end]
    try:
        first_line = raw_first.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        # A Latin-1 user part in the Request-URI, a mangled reason phrase: read as packet text, and
        # the grammar below still decides (a stray byte in the method or version is not SIP).
        first_line = packet_text(raw_first).rstrip("\r")
        anomaly("sip.not_utf8", f"start-line byte {exc.start}")
    is_request, method, request_uri, status_code, reason_phrase = _parse_start_line(first_line)
    try:
        head_end, body_start = _find_header_end(data, max_header_bytes)
    except SipParseError as exc:
        if exc.reason != "sip.no_header_end":
            raise
        # A datagram cut by the snaplen or the sender: the headers it has are still worth reading.
        anomaly(exc.reason, exc.detail)
        head_end = body_start = len(data)
    try:
        head = data[:head_end].decode("utf-8")
    except UnicodeDecodeError as exc:
        if "sip.not_utf8" not in anomalies:  # once per message, the start-line may have said it
            anomaly("sip.not_utf8", f"byte {exc.start}")
        # Each stray byte as its \xNN escape (see packet_content); the exact bytes go on in the event.raw.
        head = packet_text(data[:head_end])
    # CRLF -> LF once, rather than a test per line; a lone CR stays, as before.
    lines = head.replace("\r\n", "\n").split("\n")
    if lines[-1].endswith("\r"):  # a cut message's last line: its CR still ends it
        lines[-1] = lines[-1][:-1]

    headers: list[tuple[str, str]] = []
    index: dict[str, list[str]] = {}
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            # RFC 3261 7.3.1: a folded line continues the previous value.
            if not headers:
                anomaly("sip.bad_header", "continuation before any header")
                continue
            name, value = headers[-1]
            joined = f"{value} {line.strip()}" if value else line.strip()
            headers[-1] = (name, joined)
            values = index[name.lower()]
            values[-1] = joined
            continue
        colon = line.find(":")
        if colon <= 0:
            anomaly("sip.bad_header", f"no colon in {line[:32]!r}")
            continue
        raw_name = line[:colon]
        names = _NAME_CACHE.get(raw_name)
        if names is None:
            try:
                names = _header_name(raw_name)
            except SipParseError as exc:
                anomaly(exc.reason, exc.detail)
                continue
        if len(headers) >= max_headers:
            raise SipParseError("sip.too_many_headers", f"more than {max_headers}")
        name, key = names
        value = line[colon + 1 :].strip(" \t")
        headers.append((name, value))
        bucket = index.get(key)
        if bucket is None:
            index[key] = [value]
        else:
            bucket.append(value)

    call_ids = index.get("call-id")
    if not call_ids or not call_ids[0]:
        raise SipParseError("sip.missing_call_id")
    call_id = call_ids[0]

    cseqs = index.get("cseq")
    if not cseqs:
        raise SipParseError("sip.missing_cseq")
    try:
        cseq_num, cseq_method = _parse_cseq(cseqs[0])
    except SipParseError as exc:
        # A number followed by a mangled method still orders the transaction.
        parts = cseqs[0].split()
        if strict or len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
            raise
        anomaly(exc.reason, exc.detail)
        cseq_num, cseq_method = int(parts[0]), parts[1]

    from_addr = _required_name_addr(index, "from")
    to_addr = _required_name_addr(index, "to")

    rest = data[body_start:]
    content_length: int | None = None
    lengths = index.get("content-length")
    body = rest
    if lengths:
        try:
            content_length = _parse_content_length(lengths)
        except SipParseError as exc:
            anomaly(exc.reason, exc.detail)
        else:
            if content_length > len(rest):
                # Over UDP the datagram is the message (RFC 3261 18.3): keep the partial body.
                anomaly("sip.content_length_mismatch", f"Content-Length {content_length}, body {len(rest)}")
            else:
                body = rest[:content_length]

    return SipMessage(
        is_request=is_request,
        method=method,
        request_uri=request_uri,
        status_code=status_code,
        reason_phrase=reason_phrase,
        first_line=first_line,
        headers=headers,
        body=body,
        call_id=call_id,
        cseq_num=cseq_num,
        cseq_method=cseq_method,
        from_addr=from_addr,
        to_addr=to_addr,
        content_length=content_length,
        size=size,
        anomalies=anomalies,
        _index=index,
    )


def _parse_cseq(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) != 2:
        raise SipParseError("sip.bad_cseq", value[:64])
    num_text, method = parts
    if not num_text.isdigit() or not num_text.isascii() or len(num_text) > 10:
        raise SipParseError("sip.bad_cseq", value[:64])
    num = int(num_text)
    if num > _CSEQ_MAX:
        raise SipParseError("sip.bad_cseq", value[:64])
    if not _TOKEN_RE.fullmatch(method):
        raise SipParseError("sip.bad_cseq", value[:64])
    return num, method


def _required_name_addr(index: dict[str, list[str]], key: str) -> NameAddr:
    values = index.get(key)
    if not values:
        raise SipParseError(f"sip.missing_{key}")
    try:
        return parse_name_addr(values[0])
    except ValueError as exc:
        raise SipParseError(f"sip.bad_{key}", f"{exc}: {values[0][:64]!r}") from None


def _parse_content_length(values: list[str]) -> int:
    result: int | None = None
    for value in values:
        text = value.strip()
        if not text.isdigit() or not text.isascii() or len(text) > 9:
            raise SipParseError("sip.bad_content_length", text[:32])
        number = int(text)
        if result is not None and number != result:
            raise SipParseError("sip.bad_content_length", "conflicting Content-Length headers")
        result = number
    assert result is not None
    return result
