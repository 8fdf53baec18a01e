"""Mid-call rules: what can be judged of a call that is still up, from its interval reports.

Every mid-call alert says since when the problem shows in ``details["since_ts"]`` (capture
time: the silent direction's last packet, the answer, the judged interval's start).

Each shares its id with the whole-call rule it anticipates (``one_way_audio``,
``no_media``, ``packet_loss``, ``high_jitter``, ``low_mos``), so its alert has the same ``alert_id`` as the
one the finished call would raise: the final record refines it (``in_progress``
false, details of the whole call) instead of adding a second alert. A rule
that is not sure says nothing and leaves the verdict to the end of the call.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from callqual.detector.call_context import CallContext
from callqual.detector.emodel import DEFAULT_ONE_WAY_DELAY_MS, mos_from_r, r_factor
from callqual.detector.live_calls import QUALITY_WINDOW_S, StreamInterval
from callqual.detector.rules.base import evidence_from, make_alert_id
from callqual.detector.rules.media import (
    MediaDirection,
    audio,
    bidirectional_intended,
    media_negotiated,
    sdp_messages,
    stream_direction,
)
from callqual.detector.rules.sender_pace import may_suppress_silence, sent_without_pause
from callqual.detector.rules.settings import RuleSettings
from callqual.schemas import Alert, SdpMedia, Severity, SipMessageEvent, StreamRecord

#: What a mid-call alert's summary ends with (the finished call's version drops it)
IN_PROGRESS_SUFFIX = " (call in progress)"

#: Mid-call MOS needs a full window: the E-model rates listening quality over a stretch of a
#: call, and a stream's first seconds (its 2 s probe reports) would rate a handful of losses.
#: A judged interval's base report is at least a window, less a second of tick phase, back.
_MOS_MIN_WINDOW_S = QUALITY_WINDOW_S - 1.0

#: A stream still flowing reports a last packet within this much of the report tick.
_FLOWING_WITHIN_S = 2.0


@dataclass(frozen=True, slots=True)
class LiveView:
    """An answered call, not ended, at capture time ``now``: its context (live streams included)."""

    ctx: CallContext
    now: float
    #: the streams reported in the latest batch, with their last interval
    intervals: list[StreamInterval]
    #: any interval or final stream report seen for the call
    has_media_reports: bool
    #: the collector's latest report tick (see ``LiveCalls.batch_tick``): every stream with a
    #: packet in the interval before it has reported by now
    tick: float


class LiveRule(ABC):
    id: ClassVar[str]
    severity: ClassVar[Severity]

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings

    @abstractmethod
    def judge(self, view: LiveView) -> Alert | None: ...

    def alert(
        self,
        view: LiveView,
        summary: str,
        details: dict[str, float | int | str | None],
        evidence: Iterable[SipMessageEvent],
        severity: Severity | None = None,
    ) -> Alert:
        rec = view.ctx.record
        return Alert(
            alert_id=make_alert_id(self.id, rec.call_id, rec.first_frame),
            rule=self.id,
            severity=severity or self.severity,
            call_id=rec.call_id,
            source_ip=rec.caller_ip,
            first_ts=rec.start_ts,
            last_ts=max(view.now, rec.start_ts),
            summary=summary + IN_PROGRESS_SUFFIX,
            details=details,
            evidence=evidence_from(evidence, self.settings.evidence_limit),
            in_progress=True,
        )


class LiveOneWayAudio(LiveRule):
    """One direction silent while the other flows, the SDP in force saying two-way.

    How long it must be silent depends on what its sender showed (see :mod:`sender_pace`):
    ``live_one_way_never_s`` when it never sent since answer; ``live_one_way_quiet_s`` after it
    sent at its own ptime without a pause for ``live_one_way_continuous_s``;
    ``live_one_way_brief_quiet_s`` after a shorter such spell (``live_one_way_brief_min_s`` or
    more) from a sender that cannot suppress silence; ``live_one_way_pausing_quiet_s`` otherwise
    (it paused, sent too briefly to tell, or may be in a silence-suppressed pause).
    Silence counts from the direction's last packet, the answer, or the latest SDP exchange,
    whichever is last: a resume or a port move starts the wait afresh.
    """

    id = "one_way_audio"
    severity = "critical"

    def judge(self, view: LiveView) -> Alert | None:
        ctx = view.ctx
        answer_ts = ctx.record.answer_ts
        if answer_ts is None or not ctx.streams:
            return None
        if not (media_negotiated(ctx) and bidirectional_intended(ctx)):
            return None
        sent: dict[MediaDirection, list[StreamRecord]] = {}
        for st in ctx.streams:
            direction = stream_direction(ctx, st)
            if direction is None or st.unreliable:
                return None  # addresses SDP does not explain, or a sensor that dropped: wait for the end
            sent.setdefault(direction, []).append(st)
        last = {d: max(st.last_ts for st in streams) for d, streams in sent.items()}
        flowing = max(last, key=last.__getitem__)
        quiet: MediaDirection = "callee_to_caller" if flowing == "caller_to_callee" else "caller_to_callee"
        if view.now - last[flowing] > _FLOWING_WITHIN_S:
            return None  # both directions stopped: not one-way (a hang-up is coming, or no_media)
        quiet_since = max(last.get(quiet, answer_ts), answer_ts, _sdp_in_force_since(ctx))
        silent_s = last[flowing] - quiet_since
        needed, pace = self._wait(ctx, quiet, sent.get(quiet, []))
        if silent_s < needed:
            return None
        return self.alert(
            view,
            f"one-way audio: no RTP {quiet.replace('_', ' ')} for {silent_s:.0f} s "
            f"while {flowing.replace('_', ' ')} flows",
            {
                "flowing_direction": flowing,
                "silent_direction": quiet,
                "since_ts": quiet_since,
                "silent_s": round(silent_s, 3),
                "streams": len(ctx.streams),
                "sender_pace": pace,
                "wait_s": needed,
            },
            sdp_messages(ctx),
        )

    def _wait(
        self, ctx: CallContext, quiet: MediaDirection, streams: list[StreamRecord]
    ) -> tuple[float, str]:
        """Seconds of silence that make a stop, and which kind of sender the quiet one was."""
        s = self.settings
        if not streams:
            return s.live_one_way_never_s, "never_sent"
        latest = max(streams, key=lambda st: st.last_ts)
        span = latest.last_ts - latest.first_ts
        if sent_without_pause(latest):
            if span >= s.live_one_way_continuous_s:
                return s.live_one_way_quiet_s, "continuous"
            if span >= s.live_one_way_brief_min_s and not may_suppress_silence(streams, _own_sdp(ctx, quiet)):
                return s.live_one_way_brief_quiet_s, "brief"
        return s.live_one_way_pausing_quiet_s, "pausing"


def _own_sdp(ctx: CallContext, sender: MediaDirection) -> list[SdpMedia]:
    """Every SDP the sending party of ``sender`` sent in the call."""
    rec = ctx.record
    if sender == "caller_to_callee":
        return [*rec.offered_media, *ctx.sdp.caller]
    return [*rec.answered_media, *ctx.sdp.callee]


def _sdp_in_force_since(ctx: CallContext) -> float:
    """When the latest completed offer/answer took effect (-inf without one): silence counts after it."""
    done = [ex.answer_ts for ex in ctx.sdp.exchanges if ex.answer_ts is not None]
    return max(done, default=float("-inf"))


class LiveNoMedia(LiveRule):
    """Not one stream report for the call at a collector tick ``live_no_media_after_s`` after answer.

    A stream with any packet in the interval before a tick reports at that tick, so a tick
    without one for this call, less than an interval after its answer, proves no RTP since.
    """

    id = "no_media"
    severity = "critical"

    def judge(self, view: LiveView) -> Alert | None:
        ctx = view.ctx
        answer_ts = ctx.record.answer_ts
        if answer_ts is None or view.has_media_reports or ctx.streams:
            return None
        since = view.tick - answer_ts
        if since < self.settings.live_no_media_after_s:
            return None
        answer = ctx.record.answered_media
        if answer and all(m.direction == "inactive" for m in audio(answer)):
            return None
        return self.alert(
            view,
            f"answered call with no RTP for {since:.0f} s",
            {"talk_time_s": round(since, 3), "streams": 0, "since_ts": answer_ts},
            sdp_messages(ctx),
        )


class LiveHeavyLoss(LiveRule):
    """A stream lost more than ``live_packet_loss_ratio`` of what its last interval expected."""

    id = "packet_loss"
    severity = "critical"

    def judge(self, view: LiveView) -> Alert | None:
        s = self.settings
        judged = [
            iv
            for iv in view.intervals
            if iv.expected >= s.quality_min_packets and not iv.stream.unreliable and iv.lost > 0
        ]
        if not judged:
            return None
        worst = max(judged, key=lambda iv: iv.lost / iv.expected)
        ratio = worst.lost / worst.expected
        if ratio <= s.live_packet_loss_ratio:
            return None
        st = worst.stream
        return self.alert(
            view,
            f"{ratio:.1%} packet loss over the last interval on stream {st.src_ip}:{st.src_port} -> "
            f"{st.dst_ip}:{st.dst_port}",
            {
                "interval_loss_ratio": round(ratio, 5),
                "interval_lost": worst.lost,
                "interval_expected": worst.expected,
                "ssrc": st.ssrc,
                "threshold": s.live_packet_loss_ratio,
                "since_ts": worst.since_ts,
            },
            sdp_messages(view.ctx),
        )


class LiveHighJitter(LiveRule):
    """A stream's mean jitter over its last interval above ``jitter_mean_ms``: clipped audio now."""

    id = "high_jitter"
    severity = "warning"

    def judge(self, view: LiveView) -> Alert | None:
        s = self.settings
        judged = [
            iv
            for iv in view.intervals
            if iv.packets >= s.quality_min_packets
            and not iv.stream.unreliable
            and iv.mean_jitter_ms > s.jitter_mean_ms
        ]
        if not judged:
            return None
        worst = max(judged, key=lambda iv: iv.mean_jitter_ms)
        st = worst.stream
        return self.alert(
            view,
            f"jitter mean {worst.mean_jitter_ms:.1f} ms over the last interval on stream "
            f"{st.src_ip}:{st.src_port} -> {st.dst_ip}:{st.dst_port}",
            {
                "interval_mean_jitter_ms": round(worst.mean_jitter_ms, 3),
                "interval_packets": worst.packets,
                "ssrc": st.ssrc,
                "mean_threshold_ms": s.jitter_mean_ms,
                "since_ts": worst.since_ts,
            },
            sdp_messages(view.ctx),
        )


class LiveLowMos(LiveRule):
    """A stream's E-model MOS over its last interval(s) below the whole-call ``low_mos`` floor.

    The same E-model, codec impairments and thresholds as :mod:`low_mos`, fed the interval's
    loss and mean jitter instead of the whole stream's (BurstR stays the stream's so far: the
    interval keeps no loss runs), so a call that turned bad is seen while it is bad, not
    diluted by its good minutes. Like the whole-call rule it stays quiet when the codec alone
    explains the score; unlike the loss rule it waits for a full window (``_MOS_MIN_WINDOW_S``).
    Mid-call it raises only below the *critical* floor: a 10 s dip between the two floors is
    common in calls that end fine (a burst of loss), so a warning waits for the whole call.
    """

    id = "low_mos"
    severity = "critical"

    def judge(self, view: LiveView) -> Alert | None:
        s = self.settings
        scored = [
            (interval_r_factor(iv), iv)
            for iv in view.intervals
            if iv.packets >= s.quality_min_packets
            and iv.expected > 0
            and not iv.stream.unreliable
            and iv.stream.last_ts - iv.since_ts >= _MOS_MIN_WINDOW_S
        ]
        if not scored:
            return None
        r, worst = min(scored, key=lambda pair: pair[0])
        mos = mos_from_r(r)
        if mos >= s.low_mos_critical:
            return None
        st = worst.stream
        ceiling = mos_from_r(r_factor(st.codec, 0.0, 1.0, DEFAULT_ONE_WAY_DELAY_MS))
        if ceiling - mos < s.low_mos_min_network_drop:
            return None
        return self.alert(
            view,
            f"MOS {mos:.2f} over the last {st.last_ts - worst.since_ts:.0f} s on stream "
            f"{st.src_ip}:{st.src_port} -> {st.dst_ip}:{st.dst_port}",
            {
                "interval_mos": round(mos, 3),
                "interval_r_factor": round(r, 2),
                "interval_loss_ratio": round(_interval_loss(worst), 5),
                "interval_mean_jitter_ms": round(worst.mean_jitter_ms, 3),
                "interval_packets": worst.packets,
                "window_s": round(st.last_ts - worst.since_ts, 3),
                "ssrc": st.ssrc,
                "codec": st.codec,
                "codec_ceiling_mos": round(ceiling, 3),
                "threshold": s.low_mos_critical,
                "since_ts": worst.since_ts,
            },
            sdp_messages(view.ctx),
        )


def _interval_loss(iv: StreamInterval) -> float:
    return min(1.0, max(0, iv.lost) / iv.expected)


def interval_r_factor(iv: StreamInterval) -> float:
    """R of the interval, as :func:`emodel.stream_mos` rates a whole stream (delay: default + jitter)."""
    delay = DEFAULT_ONE_WAY_DELAY_MS + max(0.0, iv.mean_jitter_ms)
    return r_factor(iv.stream.codec, _interval_loss(iv), iv.stream.burst_ratio, delay)


LIVE_RULES: tuple[type[LiveRule], ...] = (
    LiveNoMedia,
    LiveOneWayAudio,
    LiveHeavyLoss,
    LiveHighJitter,
    LiveLowMos,
)


def build_live_rules(settings: RuleSettings) -> list[LiveRule]:
    return [r(settings) for r in LIVE_RULES if r.id not in settings.disabled_rules]
