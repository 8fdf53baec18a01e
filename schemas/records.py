"""What the detector publishes per finished call and per RTP stream."""

from typing import Literal

from pydantic import Field

from callqual.schemas.base import SCHEMA_VERSION, WireModel
from callqual.schemas.events import RtpStreamStats, SdpMedia
from callqual.schemas.packet_content import PacketText

CallCategory = Literal[
    "ok",
    "poor_quality",
    "one_way",
    "no_media",
    "failed_user",
    "failed_network",
    "failed_auth",
    "suspicious",
]

CallState = Literal[
    "completed",  # answered and ended with BYE
    "answered",  # answered, no BYE seen before the capture/timeout ended
    "failed",  # final non-2xx response
    "cancelled",  # CANCEL + 487
    "in_progress",  # no final response seen
    "non_invite",  # a dialog-less transaction (REGISTER, OPTIONS, MESSAGE, ...)
]


class StreamRecord(RtpStreamStats):
    """A finished RTP stream with its listening-quality estimate."""

    kind: Literal["stream_record"] = "stream_record"
    schema_version: int = SCHEMA_VERSION
    r_factor: float | None = None
    mos: float | None = None
    #: RTCP-reported figures about this SSRC from the far end, when present
    rtcp_fraction_lost: float | None = None
    rtcp_jitter_ms: float | None = None
    rtcp_rtt_ms: float | None = None


class CallRecord(WireModel):
    kind: Literal["call_record"] = "call_record"
    schema_version: int = SCHEMA_VERSION
    call_id: PacketText
    method: PacketText
    from_uri: PacketText | None
    to_uri: PacketText | None
    from_tag: PacketText | None = None
    to_tag: PacketText | None = None
    caller_ip: str | None = None
    callee_ip: str | None = None
    user_agent: PacketText | None = None
    state: CallState
    final_status: int | None
    final_reason: PacketText | None = None
    #: What the final status means for an operator (auth, forbidden, not_found, unreachable, codec,
    #: server, busy, cancelled, declined, redirect, other), from the code, never the reason text
    failure_class: str | None = None
    reason_header: PacketText | None = None
    hangup_by: Literal["caller", "callee"] | None = None
    start_ts: float
    answer_ts: float | None = None
    end_ts: float | None = None
    post_dial_delay_ms: float | None
    setup_time_ms: float | None
    duration_s: float | None
    messages: int = 0
    retransmissions: int = 0
    requests: dict[str, int] = Field(default_factory=dict)
    responses: dict[str, int] = Field(default_factory=dict)
    offered_media: list[SdpMedia] = Field(default_factory=list)
    answered_media: list[SdpMedia] = Field(default_factory=list)
    streams: list[PacketText] = Field(default_factory=list)
    codecs: list[PacketText] = Field(default_factory=list)
    mos: float | None = None
    category: CallCategory
    problems: list[str] = Field(default_factory=list)
    unreliable: bool = False
    first_frame: int = 0
    #: Why the record was closed: signalling (BYE, final failure), timeout (no BYE, no media),
    #: end_of_input (still open when the capture ended), evicted (call table full)
    closed_by: Literal["signalling", "timeout", "end_of_input", "evicted"] = "signalling"


LiveCallState = Literal["trying", "ringing", "answered"]


class CallStateUpdate(WireModel):
    """A call in flight, as the detector knows it now: published on state changes and, once
    answered, with its current quality after each interval report (at most one per
    ``min_interval`` per call). The call's :class:`CallRecord` supersedes it when it ends.
    """

    kind: Literal["call_state"] = "call_state"
    schema_version: int = SCHEMA_VERSION
    call_id: PacketText
    #: capture time of this update
    ts: float
    state: LiveCallState
    from_uri: PacketText | None = None
    to_uri: PacketText | None = None
    caller_ip: str | None = None
    callee_ip: str | None = None
    user_agent: PacketText | None = None
    start_ts: float
    ringing_ts: float | None = None
    answer_ts: float | None = None
    first_frame: int = 0
    #: live streams of the call and their worst current figures (whole stream so far)
    streams: int = 0
    mos: float | None = None
    #: worst loss ratio over the streams' last interval
    loss_ratio: float | None = None
    jitter_ms: float | None = None
    #: rules that alerted while the call is up
    problems: list[str] = Field(default_factory=list)
