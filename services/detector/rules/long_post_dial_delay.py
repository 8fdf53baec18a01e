"""long_post_dial_delay: the caller waited more than a few seconds for ringback.

Beyond ~5 s of silence after dialling, callers assume failure and redial,
which doubles the load on a system that is already slow.
"""

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.schemas import Alert


class LongPostDialDelay(CallRule):
    id = "long_post_dial_delay"
    severity = "warning"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        rec = ctx.record
        pdd = rec.post_dial_delay_ms
        limit = self.settings.post_dial_delay_warning_ms
        if rec.method != "INVITE" or pdd is None or pdd <= limit:
            return []
        evidence = [
            m
            for m in ctx.messages
            if m.cseq_method == "INVITE"
            and ((m.is_request and m.method == "INVITE") or (m.status_code in (180, 183)))
        ]
        return [
            self.alert(
                ctx,
                f"post-dial delay {pdd / 1000:.1f} s",
                {"post_dial_delay_ms": round(pdd, 1), "threshold_ms": limit},
                evidence,
            )
        ]
