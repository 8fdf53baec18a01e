"""Building blocks of SIPp scenario XML: one request, one response, one SDP body, one scenario.

The real-peer tests drive SIPp with a dozen scenarios (callers, callees, a registrar's
clients, floods, re-INVITEs from both sides). Each is put together from these blocks, so a
header line is written once and a scenario reads as its call flow. Square-bracket words are
SIPp's own keywords (``[branch]``, ``[last_Via:]``, ``[len]``), filled in by SIPp at run time.
"""

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'

#: The body of a message without one (and the blank line that ends its headers).
NO_BODY = "Content-Length: 0\n\n"
#: A UAC's wait for the optional provisional responses of its INVITE.
TRYING_RINGING = '  <recv response="100" optional="true"/>\n  <recv response="180" optional="true"/>\n'


def scenario(name: str, *steps: str) -> str:
    """A whole scenario file: ``steps`` in order."""
    return f'{_HEAD}<scenario name="{name}">\n{"".join(steps)}</scenario>\n'


def sdp(
    user: str,
    *,
    session: str = "1",
    version: int | str = 1,
    port: str = "[media_port]",
    comfort_noise: bool = False,
    direction: str | None = "sendrecv",
) -> str:
    """An SDP body with its two headers: PCMA, RFC 3389 comfort noise (PT 13) offered if asked.

    ``direction`` is the RFC 3264 attribute (``sendonly`` puts the peer on hold); None leaves it
    out, which means sendrecv.
    """
    pts, cn = ("8 13", "a=rtpmap:13 CN/8000\n") if comfort_noise else ("8", "")
    attribute = "" if direction is None else f"a={direction}\n"
    return f"""Content-Type: application/sdp
Content-Length: [len]

v=0
o={user} {session} {version} IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio {port} RTP/AVP {pts}
a=rtpmap:8 PCMA/8000
{cn}{attribute}"""


def request(
    method: str,
    uri: str,
    cseq: int,
    *,
    sender: str,
    tag: str,
    to: str,
    to_tag: str = "",
    from_host: str = "[local_ip]",
    contact: str | None = "",
    before_max_forwards: str = "",
    after_max_forwards: str = "",
    body: str = NO_BODY,
    retrans: bool = True,
    branch: str = "[branch]",
) -> str:
    """A request ``sender`` sends: retransmitted every 500 ms until answered unless ``retrans`` is off.

    ``contact`` is the Contact URI (the sender at its own address when empty, no Contact header
    when None); ``to_tag`` follows the To URI (``[peer_tag_param]`` inside a dialog).
    """
    resend = ' retrans="500"' if retrans else ""
    if contact is not None:
        contact = f"Contact: <{contact or f'sip:{sender}@[local_ip]:[local_port]'}>\n"
    return f"""  <send{resend}><![CDATA[
{method} {uri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}
From: <sip:{sender}@{from_host}>;tag={tag}
To: <sip:{to}@[remote_ip]>{to_tag}
Call-ID: [call_id]
CSeq: {cseq} {method}
{contact or ""}{before_max_forwards}Max-Forwards: 70
{after_max_forwards}{body}]]></send>
"""


def response(status: str, *, to_tag: str = "", contact: str | None = None, body: str = NO_BODY) -> str:
    """A response to the request just received, its dialog headers copied from it (``[last_...]``)."""
    contact_line = "" if contact is None else f"Contact: <sip:{contact}@[local_ip]:[local_port]>\n"
    return f"""  <send><![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:]{to_tag}
[last_Call-ID:]
[last_CSeq:]
{contact_line}{body}]]></send>
"""
