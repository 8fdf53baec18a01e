"""Per-call features for the learned model, from one finished call (record, streams, messages).

One function, :func:`extract`, serves the file path (``callqual analyze``,
``callqual train``) and the Kafka detector alike, so a model trained on a
capture scores live calls on the same footing. Every feature is a
non-negative float by construction (the model log-scales them all), and the
set is versioned: a model trained on another :data:`FEATURE_VERSION` is
refused at load rather than fed misaligned columns.

Direction is decided from the caller's SDP (the offer's address), as the
quality rules do; time of day comes from the capture timestamp, never the
wall clock.
"""

import math
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from callqual.detector.call_context import CallContext
from callqual.detector.rules.media import stream_direction
from callqual.schemas import StreamRecord

#: Bumped whenever a feature is added, removed, reordered or computed differently.
FEATURE_VERSION = 1

#: Fixed codec table for the one-hot columns; anything else is ``codec_other``.
CODECS: tuple[str, ...] = ("pcmu", "pcma", "g729", "opus", "g722")


class CallFeatures(BaseModel):
    """The model's view of one call; field order is column order."""

    model_config = ConfigDict(frozen=True)

    version: ClassVar[int] = FEATURE_VERSION

    answered: float
    #: INVITE -> first 180/183 (0 when none)
    post_dial_delay_ms: float
    #: INVITE -> 200 OK (0 when not answered)
    setup_time_ms: float
    duration_s: float
    messages: float
    retransmissions: float
    #: final status // 100 (0 when none)
    final_status_class: float
    streams: float
    fwd_packets: float
    fwd_loss_ratio: float
    fwd_jitter_ms: float
    fwd_mos: float
    rev_packets: float
    rev_loss_ratio: float
    rev_jitter_ms: float
    rev_mos: float
    #: caller-to-callee share of the call's RTP payload bytes (0.5 without media)
    fwd_byte_share: float
    #: payload bytes per packet over both directions (a codec fingerprint)
    bytes_per_packet: float
    codec_pcmu: float
    codec_pcma: float
    codec_g729: float
    codec_opus: float
    codec_g722: float
    codec_other: float
    #: hour of day (UTC, capture time) on the unit circle, shifted to [0, 2] to stay non-negative
    hour_sin: float
    hour_cos: float

    @classmethod
    def names(cls) -> list[str]:
        return list(cls.model_fields)

    def vector(self) -> list[float]:
        return [float(getattr(self, name)) for name in type(self).model_fields]


def _direction_stats(streams: list[StreamRecord]) -> tuple[float, float, float, float, int]:
    """(packets, loss ratio, mean jitter ms, MOS, payload bytes) over the streams of one direction.

    MOS defaults to 0 for a silent direction: "no audio" should stand out,
    not look like perfect audio.
    """
    packets = sum(s.packets for s in streams)
    expected = sum(s.expected for s in streams)
    lost = sum(max(s.lost, 0) for s in streams)
    jitter = max((s.mean_jitter_ms for s in streams), default=0.0)
    moses = [s.mos for s in streams if s.mos is not None and s.packets > 0]
    mos = min(moses) if moses else 0.0
    loss = lost / expected if expected > 0 else 0.0
    return float(packets), loss, jitter, mos, sum(s.payload_bytes for s in streams)


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


def extract(ctx: CallContext) -> CallFeatures:
    """The features of one finished call (pure: capture data only)."""
    rec = ctx.record
    fwd: list[StreamRecord] = []
    rev: list[StreamRecord] = []
    for s in ctx.streams:
        # A stream whose direction the SDP does not tell is counted with the caller's.
        (rev if stream_direction(ctx, s) == "callee_to_caller" else fwd).append(s)
    f_pk, f_loss, f_jit, f_mos, f_bytes = _direction_stats(fwd)
    r_pk, r_loss, r_jit, r_mos, r_bytes = _direction_stats(rev)
    total_bytes = f_bytes + r_bytes
    total_packets = f_pk + r_pk
    codec = _codec(ctx)
    onehot = {f"codec_{c}": 1.0 if codec == c else 0.0 for c in CODECS}
    onehot["codec_other"] = 1.0 if codec is not None and codec not in CODECS else 0.0
    # Whole seconds into the UTC day, as datetime would say, for any capture time (even past year 9999).
    angle = 2 * math.pi * (math.floor(rec.start_ts) % 86_400) / 86_400
    return CallFeatures(
        answered=1.0 if rec.answer_ts is not None else 0.0,
        post_dial_delay_ms=max(rec.post_dial_delay_ms or 0.0, 0.0),
        setup_time_ms=max(rec.setup_time_ms or 0.0, 0.0),
        duration_s=max(rec.duration_s or 0.0, 0.0),
        messages=float(rec.messages),
        retransmissions=float(rec.retransmissions),
        final_status_class=float((rec.final_status or 0) // 100),
        streams=float(len(ctx.streams)),
        fwd_packets=f_pk,
        fwd_loss_ratio=f_loss,
        fwd_jitter_ms=f_jit,
        fwd_mos=f_mos,
        rev_packets=r_pk,
        rev_loss_ratio=r_loss,
        rev_jitter_ms=r_jit,
        rev_mos=r_mos,
        fwd_byte_share=f_bytes / total_bytes if total_bytes > 0 else 0.5,
        bytes_per_packet=total_bytes / total_packets if total_packets > 0 else 0.0,
        **onehot,
        hour_sin=1.0 + math.sin(angle),
        hour_cos=1.0 + math.cos(angle),
    )
