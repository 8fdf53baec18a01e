"""no_media: an answered call that lasted a while without a single RTP packet.

Dead air on both sides: media blocked both ways, or RTP sent to an
address nobody listens on. Short calls are skipped (an immediate hang-up
after answer need not carry RTP), and so are calls whose answer put all
audio inactive. A signalling-only capture point would make every call
look like this; such deployments should disable the rule.
"""

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.detector.rules.media import answered, audio, sdp_messages, talk_time_s
from callqual.schemas import Alert


class NoMedia(CallRule):
    id = "no_media"
    severity = "critical"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        s = self.settings
        if not answered(ctx):
            return []
        talk = talk_time_s(ctx)
        if talk is None or talk <= s.media_min_duration_s:
            return []
        answer = ctx.record.answered_media
        if answer and all(m.direction == "inactive" for m in audio(answer)):
            return []
        if sum(st.packets for st in ctx.streams) > 0:
            return []
        return [
            self.alert(
                ctx,
                f"answered call with no RTP in {talk:.1f} s",
                {"talk_time_s": round(talk, 3), "streams": len(ctx.streams)},
                sdp_messages(ctx),
            )
        ]
