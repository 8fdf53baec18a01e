"""The ground truth written next to every simulated capture.

Labels describe what was *injected*, in the units a reader of the capture
can verify: per-stream loss is counted the way Wireshark counts it (from the
first to the highest sequence number received), so the labels can be
compared directly with any analyser's output.
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from callqual.schemas import CallCategory

Fault = Literal[
    "random_loss",
    "burst_loss",
    "jitter",
    "reordering",
    "one_way_audio",
    "no_media",
    "long_post_dial_delay",
    "sip_retransmissions",
    "call_failed",
    "auth_challenge",
    "ip_fragmentation",
    "scanner",
    #: loss heavy enough (>= spec.HEAVY_LOSS_PCT) to pull the E-model MOS below the SLA floor
    "heavy_loss",
    #: BYE carrying an abnormal Reason (e.g. Q.850 cause 38, network out of order)
    "dropped_call",
    "register_bruteforce",
    "sip_flood",
    "toll_fraud",
    #: a call that no rule names but that is unlike the day's normal traffic (for the learned model)
    "model_anomaly",
    #: RTP of a payload type the SDP answer did not agree on (a gateway that ignores the answer)
    "codec_mismatch",
    #: SDP ``c=`` with a private (RFC 1918 / RFC 6598) address sent from a public signalling address
    "sdp_private_address",
    #: SIP the receiver cannot parse, or parses only by bending the grammar (fuzzers, broken stacks)
    "malformed_sip",
]


class _Label(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StreamLabel(_Label):
    """One RTP stream (one direction of one call) as it appears in the capture."""

    ssrc: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    payload_type: int
    codec: str
    clock_rate: int
    #: packets the sender emitted (including any lost before the capture point)
    sent: int
    #: packets present in the capture
    captured: int
    #: sent minus captured: equals Wireshark's "Lost" because the first and last packets are never dropped
    lost: int
    #: RFC 3550 interarrival jitter over the captured packets (mean and max of the running estimate)
    jitter_mean_ms: float = 0.0
    jitter_max_ms: float = 0.0
    rtcp: bool


class InjectedParams(_Label):
    """The knobs turned for this call; ``None`` means not injected."""

    loss_pct: float | None = None
    burst_p: float | None = None
    burst_r: float | None = None
    jitter_std_ms: float | None = None
    post_dial_delay_s: float | None = None
    invite_retransmissions: int | None = None
    #: how many times the request was challenged (401/407)
    auth_challenges: int | None = None


class CallLabel(_Label):
    """One SIP dialog or dialog-less transaction (identified by its Call-ID)."""

    call_id: str
    method: Literal["INVITE", "REGISTER", "OPTIONS"]
    from_uri: str
    to_uri: str
    caller_ip: str
    callee_ip: str
    user_agent: str
    #: SIP transport (media is always RTP over UDP)
    transport: Literal["UDP", "TCP"] = "UDP"
    #: the negotiated codec (None when no media was agreed)
    codec: str | None
    #: final response to the (last) INVITE/REGISTER/OPTIONS transaction; None if none was sent
    final_status: int | None
    category: CallCategory
    faults: list[Fault] = Field(default_factory=list)
    params: InjectedParams = InjectedParams()
    start_ts: float
    end_ts: float
    #: seconds from 200 OK to BYE (0 when not answered)
    talk_s: float = 0.0
    dtmf: str = ""
    description: str = ""
    #: the model-anomaly kind (see ``callqual.simulator.anomalies``); None for every other call
    anomaly_kind: str | None = None
    streams: list[StreamLabel] = Field(default_factory=list)


class SimulationLabels(_Label):
    """Everything ``simulate`` wrote: the scenario, its inputs and one label per Call-ID."""

    scenario: str
    seed: int
    options: dict[str, int | float | str | bool] = Field(default_factory=dict)
    #: capture start, Unix seconds
    epoch: int
    packets: int
    sip_packets: int
    rtp_packets: int
    rtcp_packets: int
    calls: list[CallLabel]

    def by_call_id(self) -> dict[str, CallLabel]:
        return {call.call_id: call for call in self.calls}


def write_labels(labels: SimulationLabels, path: Path) -> None:
    """Writes the labels as indented JSON (stable key order, so equal labels give equal files)."""
    path.write_text(labels.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_labels(path: Path) -> SimulationLabels:
    return SimulationLabels.model_validate_json(path.read_text(encoding="utf-8"))
