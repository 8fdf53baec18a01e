"""Shared views of a call's media for the quality rules (pure helpers)."""

from collections.abc import Iterable, Iterator
from typing import Literal

from callqual.detector.call_context import CallContext
from callqual.schemas import SdpMedia, SipMessageEvent, StreamRecord

MediaDirection = Literal["caller_to_callee", "callee_to_caller"]


def answered(ctx: CallContext) -> bool:
    rec = ctx.record
    return rec.answer_ts is not None or rec.state in ("completed", "answered")


def talk_time_s(ctx: CallContext) -> float | None:
    """Seconds from answer to end; the record's duration when the ends are unknown."""
    rec = ctx.record
    if rec.answer_ts is not None and rec.end_ts is not None:
        return max(0.0, rec.end_ts - rec.answer_ts)
    return rec.duration_s


def judged_streams(ctx: CallContext, min_packets: int) -> list[StreamRecord]:
    """Streams long enough, and captured cleanly enough, for quality figures to mean something.

    A stream the capture itself dropped packets from (``unreliable``) would
    blame the network for the sensor's losses.
    """
    return [s for s in ctx.streams if s.packets >= min_packets and not s.unreliable]


def audio(media: Iterable[SdpMedia]) -> list[SdpMedia]:
    return [m for m in media if m.media == "audio" and m.port != 0]


def media_negotiated(ctx: CallContext) -> bool:
    """Both offer and answer carry an active audio stream (port != 0, not inactive)."""
    rec = ctx.record
    offer = [m for m in audio(rec.offered_media) if m.direction != "inactive"]
    answer = [m for m in audio(rec.answered_media) if m.direction != "inactive"]
    return bool(offer) and bool(answer)


def bidirectional_intended(ctx: CallContext) -> bool:
    """False when SDP itself says one-way (hold, announcements): then one-way RTP is no fault."""
    rec = ctx.record
    return all(m.direction == "sendrecv" for m in audio([*rec.offered_media, *rec.answered_media]))


def _addrs(media: Iterable[SdpMedia]) -> set[tuple[str | None, int]]:
    return {(m.connection_ip, m.port) for m in audio(media)}


def party_media_addresses(
    ctx: CallContext,
) -> tuple[set[tuple[str | None, int]], set[tuple[str | None, int]]]:
    """(caller's, callee's) audio receive addresses: from every SDP each party sent in the call.

    Offers and answers both count, from either side: a re-INVITE from the
    callee (session refresh, hold/resume) or one moving media to new ports
    adds addresses to the same party instead of swapping the roles.
    """
    rec = ctx.record
    return _addrs([*rec.offered_media, *ctx.sdp.caller]), _addrs([*rec.answered_media, *ctx.sdp.callee])


def stream_direction(ctx: CallContext, stream: StreamRecord) -> MediaDirection | None:
    """Which way a stream flows: by the party whose advertised address it arrives at, or leaves from.

    The destination decides first (an SDP address is where that party
    receives); symmetric RTP (send from the receive port) lets the source
    decide when NAT rewrote the destination.
    """
    caller, callee = party_media_addresses(ctx)
    dst = (stream.dst_ip, stream.dst_port)
    src = (stream.src_ip, stream.src_port)
    for to_callee, to_caller in ((dst in callee, dst in caller), (src in caller, src in callee)):
        if to_callee != to_caller:
            return "caller_to_callee" if to_callee else "callee_to_caller"
    return None


#: SDP directions under which a party sends media (RFC 3264 6.1, from its own SDP)
_SENDING = frozenset({"sendrecv", "sendonly"})


def _sends(media: Iterable[SdpMedia]) -> bool:
    return any(m.direction in _SENDING for m in audio(media))


def intended_send_s(ctx: CallContext) -> dict[MediaDirection, float] | None:
    """Seconds of talk time during which each party's own SDP said it sends (not on hold).

    From the offer/answer exchanges in force between answer and end; None
    without that history (then both parties were meant to talk throughout).
    """
    rec, exchanges = ctx.record, ctx.sdp.exchanges
    if not exchanges or rec.answer_ts is None or rec.end_ts is None:
        return None
    out: dict[MediaDirection, float] = {"caller_to_callee": 0.0, "callee_to_caller": 0.0}
    for i, ex in enumerate(exchanges):
        took_effect = ex.answer_ts if ex.answer_ts is not None else ex.offer_ts
        nxt = exchanges[i + 1] if i + 1 < len(exchanges) else None
        until = rec.end_ts if nxt is None or nxt.answer_ts is None else nxt.answer_ts
        seconds = max(0.0, min(until, rec.end_ts) - max(took_effect, rec.answer_ts))
        caller, callee = (ex.offer, ex.answer) if ex.offerer == "caller" else (ex.answer, ex.offer)
        if _sends(caller):
            out["caller_to_callee"] += seconds
        if _sends(callee):
            out["callee_to_caller"] += seconds
    return out


def sdp_messages(ctx: CallContext) -> Iterator[SipMessageEvent]:
    return (m for m in ctx.messages if m.sdp)


def final_response(ctx: CallContext) -> list[SipMessageEvent]:
    rec = ctx.record
    return [
        m
        for m in ctx.messages
        if not m.is_request and m.status_code == rec.final_status and m.cseq_method == rec.method
    ]
