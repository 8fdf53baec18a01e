"""Just enough MGCP (RFC 3435) to learn media endpoints from its SDP.

Cable and gateway networks signal with MGCP/NCS instead of SIP; their
CRCX/MDCX commands and responses carry SDP exactly like SIP does, and
Wireshark sets up RTP conversations from them. Without this, RTP of MGCP
calls would go unseen. Commands carry the call id in the ``C:`` parameter;
responses only echo the transaction id, so the caller maps one to the other.
"""

from dataclasses import dataclass

from callqual.schemas.packet_content import packet_text

#: RFC 3435 2.3 command verbs (plus the NCS/PacketCable ones that appear in the field)
_VERBS = frozenset({b"EPCF", b"CRCX", b"MDCX", b"DLCX", b"RQNT", b"NTFY", b"AUEP", b"AUCX", b"RSIP", b"MESG"})
MGCP_PORTS = frozenset({2427, 2727})


@dataclass(slots=True, frozen=True)
class MgcpMessage:
    is_command: bool
    verb_or_code: str
    transaction_id: str
    call_id: str | None
    sdp: bytes | None


def parse_mgcp(data: bytes) -> MgcpMessage | None:
    """The MGCP message in a datagram, or None when it is not MGCP (never raises)."""
    line_end = data.find(b"\n")
    first = (data if line_end < 0 else data[:line_end]).rstrip(b"\r").split()
    if len(first) < 2 or not first[1].isdigit():
        return None
    head = first[0].upper()
    if head in _VERBS:
        # "CRCX 10511 aaln/1@gw MGCP 1.0 [NCS 1.0]": the version names the protocol
        if len(first) < 5 or first[3].upper() != b"MGCP":
            return None
        is_command = True
    elif len(head) == 3 and head.isdigit():
        is_command = False
    else:
        return None
    # RFC 3435 3.1: parameter lines, then an empty line, then the SDP (if any)
    sep = data.find(b"\n\n")
    sep_crlf = data.find(b"\r\n\r\n")
    if sep_crlf >= 0 and (sep < 0 or sep_crlf < sep):
        head_bytes, sdp = data[:sep_crlf], data[sep_crlf + 4 :]
    elif sep >= 0:
        head_bytes, sdp = data[:sep], data[sep + 2 :]
    else:
        head_bytes, sdp = data, b""
    call_id: str | None = None
    for raw in head_bytes.split(b"\n")[1:]:
        line = raw.strip()
        if line[:2].upper() == b"C:":
            call_id = packet_text(line[2:].strip()) or None
            break
    return MgcpMessage(
        is_command=is_command,
        verb_or_code=head.decode("ascii"),
        transaction_id=first[1].decode("ascii"),
        call_id=call_id,
        sdp=sdp if sdp.lstrip().startswith(b"v=") else None,
    )
