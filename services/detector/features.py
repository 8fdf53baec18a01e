"""Per-call features for the learned model, from one finished call (record, streams, messages).

One function, :func:`extract`, serves the file path (``callqual analyze``,
``callqual train``) and the Kafka detector alike, so a model trained on a
capture scores live calls on the same footing. The set is versioned: a
model trained on another :data:`FEATURE_VERSION` is refused at load rather
than fed misaligned columns.

The final status is left to the rules: busy, declined and cancelled calls
are the users' choice, rare ones (a 603 on 2 % of calls) are not anomalies.
A feature that does not apply to a call is None (a failed call has no
talk time, a silent direction no packet rate), not 0: a range learned over
"0 for failed calls, 50 packets/s for the others" would accept everything
in between. :data:`SCALES` says how each numeric feature is compared
(log for counts and times, linear for ratios and rates, circular for the
hour) and the smallest spread a range may assume for it (its resolution).

Direction comes from ``stream_direction`` (the SDP addresses), as the
quality rules decide it; time of day comes from the capture timestamp,
never the wall clock.
"""

import math
import re
from typing import ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from callqual.detector.call_context import CallContext
from callqual.detector.rules.media import stream_direction
from callqual.schemas import StreamRecord

#: Bumped whenever a feature is added, removed, reordered or computed differently.
FEATURE_VERSION = 2

#: Requests every INVITE dialog has; anything else inside a dialog (re-INVITE, UPDATE, INFO...) is extra.
_DIALOG_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "PRACK"})
_PRODUCT = re.compile(r"[A-Za-z][A-Za-z_-]*")


class Scale(NamedTuple):
    """How a feature is compared: ``log`` (log1p), ``linear`` or ``hour`` (circular), and its resolution.

    ``floor`` is in scaled units: the spread a range check assumes at least,
    so a feature constant in the baseline (all calls 50 packets/s) still
    gets a margin of a meaningful size rather than none.
    """

    kind: Literal["log", "linear", "hour"]
    floor: float
    unit: str = ""


class CallFeatures(BaseModel):
    """The model's view of one call: numeric features (None: not applicable) and categories."""

    model_config = ConfigDict(frozen=True)

    version: ClassVar[int] = FEATURE_VERSION

    answered: float
    #: INVITE -> first 180/183
    post_dial_delay_ms: float | None
    #: INVITE -> 200 OK
    setup_time_ms: float | None
    #: answer -> end
    duration_s: float | None
    messages: float
    retransmissions: float
    #: in-dialog requests beyond INVITE/ACK/BYE/CANCEL/PRACK, and re-INVITEs (not auth retries)
    mid_dialog_requests: float
    #: the largest SIP message of the call (bytes, after reassembly)
    max_sip_bytes: float | None
    streams: float
    fwd_packets: float | None
    rev_packets: float | None
    #: packets per second over the direction's streams' lifetimes (ptime, silence suppression)
    fwd_packet_rate: float | None
    rev_packet_rate: float | None
    fwd_bytes_per_packet: float | None
    rev_bytes_per_packet: float | None
    fwd_loss_ratio: float | None
    rev_loss_ratio: float | None
    fwd_jitter_ms: float | None
    rev_jitter_ms: float | None
    fwd_mos: float | None
    rev_mos: float | None
    #: packets of the quieter direction over the busier one (1: symmetric, 0: one-way)
    direction_balance: float | None
    #: RFC 4733 telephone events (DTMF) over the call's streams
    dtmf_events: float
    #: hour of day, UTC capture time
    hour: float
    #: the main codec's encoding name, lower case ('' when none)
    codec: str
    #: the caller's User-Agent product token, lower case ('' when none)
    user_agent: str

    @classmethod
    def names(cls) -> list[str]:
        """The numeric features, in column order."""
        return [name for name in cls.model_fields if name in SCALES]

    @classmethod
    def category_names(cls) -> list[str]:
        return [name for name in cls.model_fields if name not in SCALES]

    def vector(self) -> list[float]:
        """Numeric features in column order; NaN where not applicable."""
        values = (getattr(self, name) for name in self.names())
        return [math.nan if v is None else float(v) for v in values]

    def categories(self) -> list[str]:
        return [str(getattr(self, name)) for name in self.category_names()]


_COUNT = Scale("log", 0.5)
_TIME_MS = Scale("log", 0.2, "ms")
SCALES: dict[str, Scale] = {
    "answered": Scale("linear", 0.5),
    "post_dial_delay_ms": _TIME_MS,
    "setup_time_ms": _TIME_MS,
    "duration_s": Scale("log", 0.2, "s"),
    "messages": _COUNT,
    "retransmissions": _COUNT,
    "mid_dialog_requests": _COUNT,
    "max_sip_bytes": Scale("log", 0.2, "B"),
    "streams": Scale("linear", 0.5),
    "fwd_packets": Scale("log", 0.2),
    "rev_packets": Scale("log", 0.2),
    "fwd_packet_rate": Scale("linear", 2.0, "/s"),
    "rev_packet_rate": Scale("linear", 2.0, "/s"),
    "fwd_bytes_per_packet": Scale("log", 0.1, "B"),
    "rev_bytes_per_packet": Scale("log", 0.1, "B"),
    "fwd_loss_ratio": Scale("linear", 0.01),
    "rev_loss_ratio": Scale("linear", 0.01),
    "fwd_jitter_ms": Scale("log", 0.3, "ms"),
    "rev_jitter_ms": Scale("log", 0.3, "ms"),
    "fwd_mos": Scale("linear", 0.1),
    "rev_mos": Scale("linear", 0.1),
    "direction_balance": Scale("linear", 0.03),
    "dtmf_events": _COUNT,
    "hour": Scale("hour", 0.5, "h"),
}


class _Direction(NamedTuple):
    packets: float | None
    rate: float | None
    bytes_per_packet: float | None
    loss: float | None
    jitter_ms: float | None
    mos: float | None


def _direction_stats(streams: list[StreamRecord]) -> _Direction:
    """One direction's figures over its streams; all None when it carried no packet."""
    packets = sum(s.packets for s in streams)
    if packets == 0:
        return _Direction(None, None, None, None, None, None)
    expected = sum(s.expected for s in streams)
    lost = sum(max(s.lost_rfc3550 if s.lost_rfc3550 is not None else s.lost, 0) for s in streams)
    span = sum(s.last_ts - s.first_ts for s in streams if s.packets > 1)
    moses = [s.mos for s in streams if s.mos is not None and s.packets > 0]
    return _Direction(
        packets=float(packets),
        rate=packets / span if span > 0 else None,
        bytes_per_packet=sum(s.payload_bytes for s in streams) / packets,
        loss=lost / expected if expected > 0 else 0.0,
        jitter_ms=max(s.mean_jitter_ms for s in streams),
        mos=min(moses) if moses else None,
    )


def _codec(ctx: CallContext) -> str | None:
    """The main codec: of the busiest stream, else the first the answer (or offer) lists."""
    busiest = max(ctx.streams, key=lambda s: s.packets, default=None)
    if busiest is not None and busiest.codec:
        return busiest.codec.split("/", 1)[0].lower()
    for media in (ctx.record.answered_media, ctx.record.offered_media):
        for m in media:
            if m.media == "audio" and m.payload_types:
                name = m.rtpmap.get(m.payload_types[0])
                if name:
                    return name.split("/", 1)[0].lower()
    return None


def user_agent_product(user_agent: str | None) -> str:
    """A User-Agent's product token ('Yealink SIP-T46U 108' -> 'yealink'): versions vary, products don't."""
    match = _PRODUCT.search(user_agent or "")
    return match.group(0).lower() if match else ""


def _mid_dialog_requests(ctx: CallContext) -> int:
    rec = ctx.record
    others = sum(n for method, n in rec.requests.items() if method not in _DIALOG_METHODS)
    challenges = rec.responses.get("401", 0) + rec.responses.get("407", 0)
    return others + max(rec.requests.get("INVITE", 0) - 1 - challenges, 0)


def extract(ctx: CallContext) -> CallFeatures:
    """The features of one finished call (pure: capture data only)."""
    rec = ctx.record
    fwd: list[StreamRecord] = []
    rev: list[StreamRecord] = []
    for s in ctx.streams:
        # A stream whose direction the SDP does not tell is counted with the caller's.
        (rev if stream_direction(ctx, s) == "callee_to_caller" else fwd).append(s)
    f, r = _direction_stats(fwd), _direction_stats(rev)
    busier = max(f.packets or 0.0, r.packets or 0.0)
    # Seconds into the UTC day, as datetime would say, for any capture time (even past year 9999).
    day_s = math.floor(rec.start_ts) % 86_400
    answered = rec.answer_ts is not None
    return CallFeatures(
        answered=1.0 if answered else 0.0,
        post_dial_delay_ms=_non_negative(rec.post_dial_delay_ms),
        setup_time_ms=_non_negative(rec.setup_time_ms) if answered else None,
        duration_s=_non_negative(rec.duration_s) if answered else None,
        messages=float(rec.messages),
        retransmissions=float(rec.retransmissions),
        mid_dialog_requests=float(_mid_dialog_requests(ctx)),
        max_sip_bytes=float(max(m.size for m in ctx.messages)) if ctx.messages else None,
        streams=float(len(ctx.streams)),
        fwd_packets=f.packets,
        rev_packets=r.packets,
        fwd_packet_rate=f.rate,
        rev_packet_rate=r.rate,
        fwd_bytes_per_packet=f.bytes_per_packet,
        rev_bytes_per_packet=r.bytes_per_packet,
        fwd_loss_ratio=f.loss,
        rev_loss_ratio=r.loss,
        fwd_jitter_ms=f.jitter_ms,
        rev_jitter_ms=r.jitter_ms,
        fwd_mos=f.mos,
        rev_mos=r.mos,
        direction_balance=min(f.packets or 0.0, r.packets or 0.0) / busier if busier > 0 else None,
        dtmf_events=float(sum(len(s.events) for s in ctx.streams)),
        hour=day_s / 3600,
        codec=_codec(ctx) or "",
        user_agent=user_agent_product(rec.user_agent),
    )


def _non_negative(value: float | None) -> float | None:
    return None if value is None else max(value, 0.0)
