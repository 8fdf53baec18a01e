"""RFC 3261 message construction: requests, responses derived from them, ACK/CANCEL/BYE, SDP bodies.

Responses and ACK/CANCEL are *derived* from the request they answer (Via,
From, To, Call-ID and CSeq copied, RFC 3261 8.2.6 / 9.1 / 17.1.1.3) rather
than assembled by hand, so transaction matching in any reader works the way
it does on a real network.
"""

import random
from dataclasses import dataclass, field
from typing import Literal

from callqual.simulator.rtp import TELEPHONE_EVENT, Codec

SIP_PORT = 5060
MAX_FORWARDS = "70"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, NOTIFY, REFER, INFO, UPDATE"

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    600: "Busy Everywhere",
    603: "Decline",
}

#: Q.850 causes carried in the Reason header (RFC 3326) of failure responses, as gateways send them.
Q850_CAUSES: dict[int, tuple[int, str]] = {
    404: (1, "Unallocated number"),
    480: (18, "No user responding"),
    486: (17, "User busy"),
    487: (16, "Normal call clearing"),
    488: (65, "Bearer capability not implemented"),
    503: (34, "No circuit/channel available"),
    603: (21, "Call rejected"),
}


def random_hex(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


def new_branch(rng: random.Random) -> str:
    """A Via branch with the RFC 3261 magic cookie, unique per transaction."""
    return "z9hG4bK" + random_hex(rng, 16)


@dataclass(frozen=True, slots=True)
class SipParty:
    """A user agent: its address-of-record and where it sends from."""

    user: str
    display: str
    ip: str
    domain: str
    user_agent: str
    port: int = SIP_PORT
    transport: Literal["UDP", "TCP"] = "UDP"
    #: the address written in SDP ``o=``/``c=`` when it is not ``ip``: a phone behind a NAT without
    #: STUN or an ALG advertises its LAN address while its packets arrive from the NAT's public one
    sdp_ip: str | None = None

    @property
    def media_ip(self) -> str:
        """Where this party tells the far end to send RTP (what SDP says, not where packets come from)."""
        return self.sdp_ip or self.ip

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact_uri(self) -> str:
        suffix = ";transport=tcp" if self.transport == "TCP" else ""
        return f"sip:{self.user}@{self.ip}:{self.port}{suffix}"

    def name_addr(self, tag: str | None = None) -> str:
        value = f'"{self.display}" <{self.aor}>'
        return f"{value};tag={tag}" if tag else value


@dataclass(slots=True)
class SipMessage:
    """A SIP message as an ordered header list; ``to_bytes`` adds Content-Length."""

    start_line: str
    headers: list[tuple[str, str]]
    body: str = ""
    content_type: str | None = None

    def header(self, name: str) -> str:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        raise KeyError(name)

    def headers_named(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    @property
    def method(self) -> str:
        """The request method, or the CSeq method for a response."""
        if self.start_line.startswith("SIP/2.0"):
            return self.header("CSeq").split()[1]
        return self.start_line.split()[0]

    @property
    def status(self) -> int | None:
        if self.start_line.startswith("SIP/2.0"):
            return int(self.start_line.split()[1])
        return None

    def to_bytes(self) -> bytes:
        body = self.body.encode()
        lines = [self.start_line, *(f"{name}: {value}" for name, value in self.headers)]
        if self.content_type is not None and body:
            lines.append(f"Content-Type: {self.content_type}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(slots=True)
class Dialog:
    """The identifiers of one call leg, shared by every message of it."""

    call_id: str
    caller: SipParty
    callee: SipParty
    from_tag: str
    to_tag: str | None = None
    cseq: int = 1
    #: Request-URI of the INVITE (the callee's AOR); in-dialog requests use the remote Contact instead.
    request_uri: str = ""
    extra_invite_headers: list[tuple[str, str]] = field(default_factory=list)

    def via(self, party: SipParty, branch: str) -> str:
        return f"SIP/2.0/{party.transport} {party.ip}:{party.port};branch={branch};rport"


def sdp_body(
    party: SipParty, session_id: int, version: int, port: int, codecs: list[Codec], *, dtmf: bool = True
) -> str:
    """An SDP offer/answer (RFC 4566 / RFC 3264) with one audio stream."""
    pts = [c.payload_type for c in codecs] + ([TELEPHONE_EVENT.payload_type] if dtmf else [])
    lines = [
        "v=0",
        f"o={party.user} {session_id} {version} IN IP4 {party.media_ip}",
        "s=call",
        f"c=IN IP4 {party.media_ip}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(pt) for pt in pts)}",
    ]
    for codec in [*codecs, *([TELEPHONE_EVENT] if dtmf else [])]:
        lines.append(f"a=rtpmap:{codec.payload_type} {codec.rtpmap}")
        if codec.fmtp:
            lines.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
    lines += ["a=ptime:20", "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"


def request(
    dialog: Dialog,
    method: str,
    *,
    sender: SipParty,
    branch: str,
    uri: str,
    cseq: int,
    from_caller: bool = True,
    body: str = "",
    extra: list[tuple[str, str]] | None = None,
) -> SipMessage:
    """A request sent by ``sender``; ``from_caller=False`` builds a callee-originated in-dialog request."""
    if from_caller:
        from_hdr = dialog.caller.name_addr(dialog.from_tag)
        to_hdr = dialog.callee.name_addr(dialog.to_tag)
    else:
        from_hdr = dialog.callee.name_addr(dialog.to_tag)
        to_hdr = dialog.caller.name_addr(dialog.from_tag)
    headers = [
        ("Via", dialog.via(sender, branch)),
        ("Max-Forwards", MAX_FORWARDS),
        ("From", from_hdr),
        ("To", to_hdr),
        ("Call-ID", dialog.call_id),
        ("CSeq", f"{cseq} {method}"),
    ]
    if method in ("INVITE", "REGISTER", "OPTIONS"):
        headers.append(("Contact", f"<{sender.contact_uri}>"))
    if method in ("INVITE", "OPTIONS", "REGISTER"):
        headers.append(("Allow", ALLOW))
    headers.append(("User-Agent", sender.user_agent))
    headers += extra or []
    return SipMessage(f"{method} {uri} SIP/2.0", headers, body, "application/sdp" if body else None)


def response(
    req: SipMessage,
    status: int,
    *,
    responder: SipParty,
    to_tag: str | None,
    body: str = "",
    extra: list[tuple[str, str]] | None = None,
    reason: str | None = None,
) -> SipMessage:
    """A response to ``req`` (RFC 3261 8.2.6.2): Via/From/Call-ID/CSeq copied, To tagged unless 100."""
    to_hdr = req.header("To")
    if to_tag and status != 100 and ";tag=" not in to_hdr:
        to_hdr = f"{to_hdr};tag={to_tag}"
    headers = [("Via", via) for via in req.headers_named("Via")]
    headers += [
        ("From", req.header("From")),
        ("To", to_hdr),
        ("Call-ID", req.header("Call-ID")),
        ("CSeq", req.header("CSeq")),
    ]
    if req.method == "INVITE" and 100 < status < 300:
        headers.append(("Contact", f"<{responder.contact_uri}>"))
    if status >= 200 and req.method in ("INVITE", "OPTIONS"):
        headers.append(("Allow", ALLOW))
    headers.append(("Server", responder.user_agent))
    if status in Q850_CAUSES and status >= 300:
        cause, text = Q850_CAUSES[status]
        headers.append(("Reason", f'Q.850;cause={cause};text="{text}"'))
    headers += extra or []
    phrase = reason or REASON_PHRASES[status]
    return SipMessage(f"SIP/2.0 {status} {phrase}", headers, body, "application/sdp" if body else None)


def ack_for_failure(invite: SipMessage, final: SipMessage) -> SipMessage:
    """The ACK of a non-2xx final response: same transaction, so same branch and CSeq number (17.1.1.3)."""
    cseq_num = invite.header("CSeq").split()[0]
    headers = [
        ("Via", invite.headers_named("Via")[0]),
        ("Max-Forwards", MAX_FORWARDS),
        ("From", invite.header("From")),
        ("To", final.header("To")),
        ("Call-ID", invite.header("Call-ID")),
        ("CSeq", f"{cseq_num} ACK"),
    ]
    uri = invite.start_line.split()[1]
    return SipMessage(f"ACK {uri} SIP/2.0", headers)


def cancel_for(invite: SipMessage) -> SipMessage:
    """A CANCEL matching the INVITE's transaction (RFC 3261 9.1): same branch, URI, From, To, CSeq number."""
    cseq_num = invite.header("CSeq").split()[0]
    headers = [
        ("Via", invite.headers_named("Via")[0]),
        ("Max-Forwards", MAX_FORWARDS),
        ("From", invite.header("From")),
        ("To", invite.header("To")),
        ("Call-ID", invite.header("Call-ID")),
        ("CSeq", f"{cseq_num} CANCEL"),
    ]
    uri = invite.start_line.split()[1]
    return SipMessage(f"CANCEL {uri} SIP/2.0", headers)


def digest_challenge(rng: random.Random, realm: str, *, proxy: bool) -> tuple[str, str]:
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    nonce = random_hex(rng, 32)
    return name, f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'


def digest_credentials(
    rng: random.Random, party: SipParty, realm: str, uri: str, nonce_source: str, *, proxy: bool
) -> tuple[str, str]:
    """Credentials answering a challenge; the response hash is random (the simulator knows no passwords)."""
    name = "Proxy-Authorization" if proxy else "Authorization"
    nonce = nonce_source.split('nonce="')[1].split('"', maxsplit=1)[0]
    value = (
        f'Digest username="{party.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{random_hex(rng, 32)}", algorithm=MD5, cnonce="{random_hex(rng, 8)}", '
        "qop=auth, nc=00000001"
    )
    return name, value
