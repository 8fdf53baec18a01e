"""high_jitter: RFC 3550 interarrival jitter high enough to overrun a typical jitter buffer.

Both the mean (sustained) and the max (bursts) are checked: a sustained
30 ms or a 60 ms peak of the smoothed estimator both produce late-packet
discards, heard as clipping.
"""

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.detector.rules.media import judged_streams, sdp_messages
from callqual.schemas import Alert


class HighJitter(CallRule):
    id = "high_jitter"
    severity = "warning"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        s = self.settings
        bad = [
            st
            for st in judged_streams(ctx, s.quality_min_packets)
            if st.mean_jitter_ms > s.jitter_mean_ms or st.max_jitter_ms > s.jitter_max_ms
        ]
        if not bad:
            return []
        worst = max(bad, key=lambda st: (st.mean_jitter_ms, st.max_jitter_ms))
        return [
            self.alert(
                ctx,
                f"jitter mean {worst.mean_jitter_ms:.1f} ms / max {worst.max_jitter_ms:.1f} ms on stream "
                f"{worst.src_ip}:{worst.src_port} -> {worst.dst_ip}:{worst.dst_port}",
                {
                    "mean_jitter_ms": round(worst.mean_jitter_ms, 3),
                    "max_jitter_ms": round(worst.max_jitter_ms, 3),
                    "ssrc": worst.ssrc,
                    "streams_affected": len(bad),
                    "mean_threshold_ms": s.jitter_mean_ms,
                    "max_threshold_ms": s.jitter_max_ms,
                },
                sdp_messages(ctx),
            )
        ]
