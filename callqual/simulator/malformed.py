"""Malformed SIP datagrams: what fuzzers and broken stacks put on the signalling port.

Each kind starts from a well-formed request and breaks it the way real
traffic is broken (PROTOS/c07-sip-style fuzz cases, datagrams cut short,
Latin-1 bytes from old phones), so a reader sees plausible bytes on port
5060 rather than noise. Some kinds are beyond any parser (no usable start
line, no Call-ID); others parse only by bending the grammar (a header line
without a colon, bytes that are not UTF-8). A tolerant collector keeps the
second sort but still reports both: either way the source is sending SIP it
should not, which is what the ``malformed_sip`` label and rule are about.
"""

import random
import string

from callqual.simulator.call_flow import CallArtifacts
from callqual.simulator.labels import CallLabel
from callqual.simulator.pcap_writer import TimedFrame, UdpFlow
from callqual.simulator.sip_messages import (
    Dialog,
    SipMessage,
    new_branch,
    random_hex,
    request,
)
from callqual.simulator.spec import MalformedSpec

#: How a datagram is broken. INVITE-based kinds cannot be parsed at all (nothing could key a
#: call from them); OPTIONS-based ones parse with anomalies and only ever make a transaction.
KINDS: dict[str, str] = {
    "truncated": "INVITE",
    "bad_start_line": "INVITE",
    "bad_cseq": "INVITE",
    "non_utf8_start_line": "INVITE",
    "garbage_header": "OPTIONS",
    "junk_header": "OPTIONS",
    "non_utf8_header": "OPTIONS",
}
#: Characters of the 1 KB junk header: printable, no colon (so it is not a header at all).
_JUNK = (string.ascii_letters + string.digits + string.punctuation).replace(":", "")


def _base(spec: MalformedSpec, rng: random.Random) -> SipMessage:
    client, server = spec.client, spec.server
    dialog = Dialog(
        call_id=f"{random_hex(rng, 24)}@{client.ip}",
        caller=client,
        callee=server,
        from_tag=random_hex(rng, 10),
    )
    method = KINDS[spec.kind]
    uri = f"sip:{server.user}@{server.ip}:{server.port}" if method == "INVITE" else f"sip:{server.ip}"
    return request(dialog, method, sender=client, branch=new_branch(rng), uri=uri, cseq=rng.randint(1, 9))


def mangle(kind: str, message: SipMessage, rng: random.Random) -> bytes:
    """The bytes of ``message`` broken the way ``kind`` says."""
    data = message.to_bytes()
    if kind == "truncated":
        # Cut inside the headers before the Call-ID: a datagram clipped by a broken sender or ALG.
        return data[: rng.randint(40, data.index(b"Call-ID") - 1)]
    if kind == "bad_start_line":
        method, uri, _ = message.start_line.split(" ")
        line = rng.choice(
            (
                f"{method} {uri} SIP/3.0",
                f"{method[:3]}@{method[3:]} {uri} SIP/2.0",
                f"{method}  SIP/2.0",
                f"{method} {uri}",
                f"{method} {'%' * 300} SIP/2.0",
            )
        )
        return line.encode() + data[len(message.start_line) :]
    if kind == "bad_cseq":
        bad_number = rng.choice((b"-1", b"99999999999", b"1x", b"\x00"))
        return data.replace(b"CSeq: ", b"CSeq: " + bad_number + b" ", 1)
    if kind == "non_utf8_start_line":
        user, _, rest = message.start_line.partition("@")
        bad = rng.choice((b"\xff\xfe", b"\xc3\x28", b"\xe9t\xe9", b"\x80\x81\x82"))
        return user.encode() + bad + b"@" + rest.encode() + data[len(message.start_line) :]
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if kind == "garbage_header":
        junk = rng.choice((b"Via SIP/2.0/UDP", b"%%%%%%%%", b"\x01\x02\x03\x04", b"From <sip:@>", b"=" * 64))
        lines.insert(rng.randint(1, len(lines)), junk)
    elif kind == "junk_header":
        lines.insert(rng.randint(1, len(lines)), "".join(rng.choice(_JUNK) for _ in range(1024)).encode())
    elif kind == "non_utf8_header":
        n = next(i for i, line in enumerate(lines) if line.startswith(b"From:"))
        lines[n] = lines[n].replace(b'"', b'"\xe9\xe8\xff ', 1)
    else:
        raise ValueError(f"unknown malformed SIP kind {kind!r}")
    return b"\r\n".join(lines) + sep + body


def build_malformed(spec: MalformedSpec, *, seed: str, epoch_us: int, source: int) -> CallArtifacts:
    """One malformed datagram from the client to the server (never answered) and its label."""
    rng = random.Random(seed)
    message = _base(spec, rng)
    client, server = spec.client, spec.server
    flow = UdpFlow(client.ip, client.port, server.ip, server.port, ip_id=rng.randrange(65536))
    t = epoch_us + round(spec.start_s * 1_000_000)
    frames: list[TimedFrame] = [
        (t, source, n, piece) for n, piece in enumerate(flow.frames(mangle(spec.kind, message, rng)))
    ]
    method = KINDS[spec.kind]
    label = CallLabel(
        call_id=message.header("Call-ID"),
        method="INVITE" if method == "INVITE" else "OPTIONS",
        from_uri=client.aor,
        to_uri=server.aor,
        caller_ip=client.ip,
        callee_ip=server.ip,
        user_agent=client.user_agent,
        codec=None,
        final_status=None,
        category="suspicious",
        faults=["malformed_sip"],
        start_ts=t / 1_000_000,
        end_ts=t / 1_000_000,
        description=spec.description or f"malformed SIP ({spec.kind})",
    )
    return CallArtifacts(sources=[iter(frames)], label=label, sip_packets=len(frames))
