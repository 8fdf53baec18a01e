"""SIP message parser (RFC 3261 section 7, 20 and 25), pure and bounded: the API over the compiled parser.

The parsing itself is Rust (``native/``, the ``callqual_native`` extension that ``scripts/setup``
builds from the repository): SIP ran at a tenth of tshark's speed with no hot spot left in Python,
and a message's start-line and headers took a few dozen interpreted string operations (issue 14).
There is one implementation; this module keeps the Python API (``SipMessage``, ``parse_sip``,
``SipParseError`` with its reasons) and the header tables the accessors use. A panic in the
compiled code is the reason ``sip.parser_fault`` for that message, never a dead process.

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
* Numbers (status code, CSeq, Content-Length, Via port) are ASCII digits only: a
  Unicode digit that Python's ``int()`` would read is not a number on the wire.
  Whitespace is what ``str.isspace()`` says (``strip`` and ``split`` as in Python).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, cast

import callqual_native as _native

from callqual.collector.errors import SipParseError

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
        "sip.parser_fault",
    }
)

#: Largest header section (start-line included) we accept, in bytes.
MAX_HEADER_BYTES = 64 * 1024
#: Largest number of header lines (after unfolding) we accept.
MAX_HEADERS = 256

#: RFC 3261 7.3.3 and the IANA registry of compact header names (the compiled parser's table).
COMPACT_FORMS: dict[str, str] = dict(_native.COMPACT_FORMS)

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


_native.register_types(NameAddr, Via)


def canonical_header_name(name: str) -> str:
    """Map a header name (any case, compact or long) to its registered spelling."""
    return _native.canonical_header_name(name)


def looks_like_sip(data: bytes) -> bool:
    """Cheap first-line test for routing a datagram to ``parse_sip``.

    Only the start-line is examined, after skipping CR/LF keep-alives;
    anything else before it (see the module docstring) means "not SIP".
    """
    return _native.looks_like_sip(bytes(data))


def split_header_values(value: str) -> list[str]:
    """Split a comma-separated header value, respecting quotes and ``<...>``.

    Commas inside quoted display names or inside angle-bracketed URIs are
    not separators. Empty elements are dropped.
    """
    return _native.split_header_values(value)


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` generic-params; names lowercased, first wins.

    Quoted values may contain ``;``. Values keep their case (tags and
    branches are compared case-sensitively by RFC 3261). Raises ValueError
    on an unterminated quoted value.
    """
    return _native.parse_params(text)


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``[display] <uri>;params`` or ``uri;params`` (RFC 3261 20.10).

    Without angle brackets the URI ends at the first ``;``: the parameters
    belong to the header (that is where ``tag`` lives), not to the URI.
    Raises ValueError on an unterminated quote or ``<``.
    """
    return cast(NameAddr, _native.parse_name_addr(value))


def parse_via(value: str) -> Via:
    """Parse one via-parm: ``SIP / 2.0 / UDP host[:port];params``. Raises ValueError."""
    return cast(Via, _native.parse_via(value))


@dataclass(slots=True, init=False)
class SipMessage:
    """One parsed SIP request or response.

    ``headers`` keeps every header line in wire order (names canonical,
    compact forms expanded, folded lines joined); the properties give the
    parsed values the pipeline needs. Call-ID, CSeq, From and To were
    validated by ``parse_sip``; the other properties return None when the
    header is absent or malformed, so reading them never raises. The header
    lines stay in the compiled parser's ``HeaderBlock`` until ``headers`` or a
    look-up by name asks for them: what the event needs is read by the parser.
    """

    is_request: bool
    method: str | None
    request_uri: str | None
    status_code: int | None
    reason_phrase: str | None
    first_line: str
    _block: _native.HeaderBlock = field(repr=False)
    body: bytes
    call_id: str
    cseq_num: int
    cseq_method: str
    from_uri: str
    from_tag: str | None
    to_uri: str
    to_tag: str | None
    content_length: int | None
    #: total size of the message on the wire, body included
    size: int
    #: Deviations from the grammar that were tolerated (reason strings); empty for clean SIP
    anomalies: list[str]
    #: The top Via's branch parameter (None when absent or the Via is malformed)
    via_branch: str | None
    #: The first Contact's URI (``*`` as is; None when absent or malformed)
    contact_uri: str | None
    #: User-Agent of a request, or Server of a response (either if present)
    user_agent: str | None
    #: The first Reason header
    reason_header: str | None
    #: The first Content-Type header
    content_type: str | None
    _headers: list[tuple[str, str]] | None = field(default=None, init=False, repr=False, compare=False)
    _index_cache: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(  # noqa: PLR0917 - the dataclass's fields, in order
        self,
        is_request: bool,
        method: str | None,
        request_uri: str | None,
        status_code: int | None,
        reason_phrase: str | None,
        first_line: str,
        _block: _native.HeaderBlock,
        body: bytes,
        call_id: str,
        cseq_num: int,
        cseq_method: str,
        from_uri: str,
        from_tag: str | None,
        to_uri: str,
        to_tag: str | None,
        content_length: int | None,
        size: int,
        anomalies: list[str],
        via_branch: str | None,
        contact_uri: str | None,
        user_agent: str | None,
        reason_header: str | None,
        content_type: str | None,
    ) -> None:
        # Written out, not generated: mypyc leaves a dataclass's generated __init__ interpreted,
        # and this runs once per SIP message (bench/RESULTS.md, session 8).
        self.is_request = is_request
        self.method = method
        self.request_uri = request_uri
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.first_line = first_line
        self._block = _block
        self.body = body
        self.call_id = call_id
        self.cseq_num = cseq_num
        self.cseq_method = cseq_method
        self.from_uri = from_uri
        self.from_tag = from_tag
        self.to_uri = to_uri
        self.to_tag = to_tag
        self.content_length = content_length
        self.size = size
        self.anomalies = anomalies
        self.via_branch = via_branch
        self.contact_uri = contact_uri
        self.user_agent = user_agent
        self.reason_header = reason_header
        self.content_type = content_type
        self._headers = None
        self._index_cache = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header line as (canonical name, value), in wire order."""
        if self._headers is None:
            self._headers = self._block.items()
        return self._headers

    @property
    def _index(self) -> dict[str, list[str]]:
        """Lower-case canonical name -> every value of that header, in wire order."""
        if self._index_cache is None:
            self._index_cache = self._block.index()
        return self._index_cache

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

    @property
    def from_addr(self) -> NameAddr:
        """The From header parsed whole (``parse_sip`` validated it and read its URI and tag)."""
        return parse_name_addr(self.header("From") or "")

    @property
    def to_addr(self) -> NameAddr:
        """The To header parsed whole (``parse_sip`` validated it and read its URI and tag)."""
        return parse_name_addr(self.header("To") or "")

    @property
    def from_display(self) -> str | None:
        return self.from_addr.display

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
    try:
        fields = _native.parse_sip(bytes(data), max_header_bytes, max_headers, strict)
    except _native.ParseError as exc:
        raise SipParseError(*exc.args) from None
    return SipMessage(*fields)
