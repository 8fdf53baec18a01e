"""Events the collector publishes: one per SIP message, RTP stream reports, RTCP reports.

RTP is never published per packet: the collector summarises each stream into
interval reports and one final report, which keeps the Kafka volume
proportional to calls, not packets.
"""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter

from callqual.schemas.base import SCHEMA_VERSION, WireModel

Transport = Literal["udp", "tcp", "sctp", "ws", "wss", "tls"]
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]


class SdpMedia(WireModel):
    """One ``m=`` section of an SDP body, with its effective connection address."""

    media: str
    connection_ip: str | None
    port: int
    proto: str
    payload_types: list[int]
    #: payload type -> "encoding/clock[/channels]" from a=rtpmap
    rtpmap: dict[int, str] = Field(default_factory=dict)
    direction: Direction = "sendrecv"


class SipMessageEvent(WireModel):
    """One SIP message as seen on the wire (after TCP/fragment reassembly)."""

    #: ``raw`` travels as base64 in JSON: SIP bytes need not be UTF-8.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    kind: Literal["sip_message"] = "sip_message"
    schema_version: int = SCHEMA_VERSION
    frame: int
    ts: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: Transport
    first_line: str
    is_request: bool
    method: str | None = None
    request_uri: str | None = None
    status_code: int | None = None
    reason_phrase: str | None = None
    call_id: str
    cseq_num: int | None = None
    cseq_method: str | None = None
    from_uri: str | None = None
    from_tag: str | None = None
    to_uri: str | None = None
    to_tag: str | None = None
    via_branch: str | None = None
    user_agent: str | None = None
    contact: str | None = None
    #: The Reason header (RFC 3326), e.g. 'Q.850;cause=16'
    reason_header: str | None = None
    content_type: str | None = None
    size: int
    sdp: list[SdpMedia] | None = None
    #: The message exactly as captured (after reassembly), so a store can show and export it.
    raw: bytes = b""


class RtpStreamStats(WireModel):
    """Statistics of one RTP stream (src, dst, SSRC), computed as Wireshark computes them."""

    call_id: str | None
    ssrc: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    payload_type: int
    payload_types: list[int]
    codec: str | None
    clock_rate: int | None
    first_ts: float
    last_ts: float
    first_frame: int
    packets: int
    expected: int
    lost: int
    duplicates: int
    out_of_order: int
    seq_errors: int
    min_delta_ms: float
    mean_delta_ms: float
    max_delta_ms: float
    min_jitter_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float
    #: RFC 4733 telephone events seen in the stream (digits/event codes, in order)
    events: list[str] = Field(default_factory=list)
    #: Loss by RFC 3550 A.1/A.3 extended sequence numbers (packets never received in the
    #: sequence range seen), robust where Wireshark's ``lost`` is not: a packet reordered across
    #: the 16-bit wrap makes Wireshark count a whole extra cycle (65,536 "lost"), and duplicates
    #: make it negative. ``lost`` stays Wireshark's, for agreement with tshark; quality (MOS, the
    #: packet_loss rule) uses this one. None when the received map was abandoned (see rtp_stream).
    lost_rfc3550: int | None = None
    #: ITU-T G.107 BurstR observed (mean loss burst length over the random-loss expectation; >= 0)
    burst_ratio: float = 1.0
    payload_bytes: int = 0
    #: True when the capture itself dropped packets while the stream was live
    unreliable: bool = False


class RtpStreamReport(RtpStreamStats):
    """Periodic (``final=False``) or end-of-stream (``final=True``) report."""

    kind: Literal["rtp_stream"] = "rtp_stream"
    schema_version: int = SCHEMA_VERSION
    final: bool


class RtcpReportBlock(WireModel):
    """One RTCP reception report block, with the round trip computed from LSR/DLSR."""

    ssrc: int
    fraction_lost: float
    cumulative_lost: int
    highest_seq: int
    jitter_ms: float | None
    lsr: int
    dlsr: int
    rtt_ms: float | None = None


class RtcpEvent(WireModel):
    """One RTCP SR or RR (compound packets give one event per SR/RR)."""

    kind: Literal["rtcp"] = "rtcp"
    schema_version: int = SCHEMA_VERSION
    frame: int
    ts: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    call_id: str | None
    packet_type: Literal["SR", "RR"]
    sender_ssrc: int
    blocks: list[RtcpReportBlock]


class MalformedSipEvent(WireModel):
    """A payload that looked like SIP but did not parse: kept as evidence, counted by reason."""

    kind: Literal["sip_malformed"] = "sip_malformed"
    schema_version: int = SCHEMA_VERSION
    frame: int
    ts: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: Transport
    reason: str
    #: The first line (at most 200 characters, undecodable bytes escaped)
    excerpt: str
    size: int


AnyEvent = SipMessageEvent | MalformedSipEvent | RtpStreamReport | RtcpEvent
Event = Annotated[AnyEvent, Field(discriminator="kind")]

_event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> AnyEvent:
    """Decode a collector event from JSON, dispatching on ``kind``."""
    return _event_adapter.validate_json(raw)
