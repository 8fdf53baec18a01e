"""What a scenario asks for: one spec per call or transaction, before any packet exists.

Scenarios only fill these in; ``call_flow`` turns them into packets and
labels. Keeping the two apart lets a new scenario be a few lines of data.
"""

from dataclasses import dataclass, field
from typing import Literal

from callqual.schemas import CallCategory
from callqual.simulator.impairments import JitterSpec, LossSpec, timer_a_schedule
from callqual.simulator.labels import Fault
from callqual.simulator.sip_messages import SipParty

AuthMode = Literal["none", "challenge_ok", "loop_407", "loop_401"]

USER_FAILURES = frozenset({486, 487, 600, 603})
AUTH_FAILURES = frozenset({401, 403, 407})
#: Post-dial delay above which the label carries ``long_post_dial_delay``.
LONG_PDD_S = 5.0
#: Expected loss (percent) above which the label carries ``heavy_loss``: with every codec the
#: detector knows, this much loss puts the E-model MOS under the 3.6 warning floor.
HEAVY_LOSS_PCT = 15.0


@dataclass(frozen=True, slots=True)
class MediaSpec:
    """Impairments of the media of an answered call."""

    loss: LossSpec = field(default_factory=LossSpec)
    jitter: JitterSpec = field(default_factory=JitterSpec)
    #: only the caller sends RTP; the callee still sends RTCP receiver reports (RR)
    one_way: bool = False
    #: answered but no RTP/RTCP at all
    no_media: bool = False
    rtcp: bool = True
    #: share of the time the callee sends RTP (silence suppression: talkspurts only); 1.0 = always
    callee_talkspurt_share: float = 1.0


@dataclass(frozen=True, slots=True)
class CallSpec:
    """An INVITE dialog."""

    start_s: float
    caller: SipParty
    callee: SipParty
    codec: str
    #: the codecs the caller offers (the first one the callee accepts is used); defaults to ``[codec]``
    offer: tuple[str, ...] = ()
    #: INVITE -> 180 Ringing (post-dial delay)
    pdd_s: float = 1.0
    #: 180 -> final response (or CANCEL)
    ring_s: float = 3.0
    #: 200 OK -> BYE
    talk_s: float = 20.0
    final_status: int = 200
    auth: AuthMode = "none"
    invite_retransmissions: int = 0
    media: MediaSpec = field(default_factory=MediaSpec)
    dtmf: str = ""
    #: add the carrier headers that push the INVITE past the MTU (IPv4 fragmentation)
    large_invite: bool = False
    bye_from_callee: bool = False
    #: SIP transport; media stays RTP over UDP either way
    transport: Literal["UDP", "TCP"] = "UDP"
    #: 183 Session Progress with early-media SDP before 180
    early_media: bool = False
    #: a Reason header (RFC 3326) on the BYE, e.g. 'Q.850;cause=38' for a call the network dropped
    bye_reason: str | None = None
    #: the codec the caller's side actually sends when it is not the negotiated ``codec``: a gateway
    #: that ignores the SDP answer (the callee keeps sending ``codec``)
    rtp_codec: str | None = None
    #: re-INVITEs the caller sends during the call (session refreshes), evenly spread over the talk time
    reinvites: int = 0
    #: headers added to the initial INVITE (beyond ``large_invite``'s), e.g. a bloated Record-Route set
    invite_headers: tuple[tuple[str, str], ...] = ()
    #: faults the scenario asserts on top of the ones derived from the spec (e.g. 'toll_fraud')
    extra_faults: tuple[Fault, ...] = ()
    #: which model-anomaly kind this call is (``anomalies.ANOMALY_KINDS``), for per-kind recall
    anomaly_kind: str | None = None
    #: the label's category when the scenario knows better than the derivation (e.g. 'suspicious')
    category: CallCategory | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class TransactionSpec:
    """A dialog-less REGISTER or OPTIONS transaction."""

    start_s: float
    method: Literal["REGISTER", "OPTIONS", "INVITE"]
    client: SipParty
    server: SipParty
    #: answer with a 401 challenge first, then the final status to the authenticated retry
    challenge: bool = False
    #: None: the request is never answered (a flooded server)
    final_status: int | None = 200
    suspicious: bool = False
    #: the label's faults; None means ``("scanner",)`` for a suspicious transaction, else none
    faults: tuple[Fault, ...] | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class MalformedSpec:
    """One SIP datagram that is not valid SIP: ``kind`` (see ``malformed.KINDS``) says how it is broken.

    The server never answers it (a stack drops what it cannot parse), so it
    is a single packet with a label of its own, keyed by the source address.
    """

    start_s: float
    client: SipParty
    server: SipParty
    kind: str
    description: str = ""


def call_category(spec: CallSpec) -> CallCategory:
    """The label convention of the project (see the simulator's labels)."""
    if spec.category is not None:
        return spec.category
    if spec.auth in ("loop_401", "loop_407") or spec.final_status in AUTH_FAILURES:
        return "failed_auth"
    if spec.final_status in USER_FAILURES:
        return "failed_user"
    if spec.final_status >= 300:
        return "failed_network"
    if spec.media.no_media:
        return "no_media"
    if spec.media.one_way:
        return "one_way"
    if spec.media.loss.expected_pct >= 3.0 or spec.media.jitter.std_ms >= 30.0:
        return "poor_quality"
    return "ok"


def call_faults(spec: CallSpec) -> list[Fault]:
    faults: list[Fault] = []
    answered = spec.final_status < 300 and spec.auth not in ("loop_401", "loop_407")
    media = spec.media
    if answered and not media.no_media:
        if media.loss.burst is not None:
            faults.append("burst_loss")
        elif media.loss.random_pct > 0:
            faults.append("random_loss")
        if media.jitter.std_ms > 0:
            faults.append("jitter")
        if media.jitter.reorder:
            faults.append("reordering")
        if media.one_way:
            faults.append("one_way_audio")
        if media.loss.expected_pct >= HEAVY_LOSS_PCT:
            faults.append("heavy_loss")
    if answered and media.no_media:
        faults.append("no_media")
    # Post-dial delay runs from the first INVITE sent (RFC 6076), so timer A's wait counts too.
    if spec.pdd_s + timer_a_schedule(spec.invite_retransmissions)[-1] / 1_000_000 >= LONG_PDD_S:
        faults.append("long_post_dial_delay")
    if spec.invite_retransmissions:
        faults.append("sip_retransmissions")
    if spec.auth != "none":
        faults.append("auth_challenge")
    if not answered:
        faults.append("call_failed")
    if spec.large_invite and spec.transport == "UDP":
        faults.append("ip_fragmentation")
    if answered and spec.bye_reason is not None:
        faults.append("dropped_call")
    if answered and not media.no_media and spec.rtp_codec not in (None, spec.codec):
        faults.append("codec_mismatch")
    # The caller's offer always goes out; the callee's SDP only with an answer (or early media).
    sdp_senders = [spec.caller, *([spec.callee] if answered or spec.early_media else [])]
    if any(p.sdp_ip not in (None, p.ip) for p in sdp_senders):
        faults.append("sdp_private_address")
    faults.extend(f for f in spec.extra_faults if f not in faults)
    return faults


@dataclass(slots=True)
class ScenarioCalls:
    """What a scenario builder returns."""

    calls: list[CallSpec] = field(default_factory=list)
    transactions: list[TransactionSpec] = field(default_factory=list)
    malformed: list[MalformedSpec] = field(default_factory=list)
