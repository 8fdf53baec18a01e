"""call_failed: an INVITE ended with a final error response that points at a fault.

The failure class comes from the shared status table
(:mod:`failure_classes`); busy, cancelled and declined calls are the
users' own choice and alert only when configured. Only the *final*
status counts: a 401/407 answered by an authenticated retry that then
succeeds is an ordinary challenge, not a failure.
"""

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.detector.rules.failure_classes import SEVERITY_BY_CLASS, USER_OUTCOMES, failure_class
from callqual.detector.rules.media import final_response
from callqual.schemas import Alert


class CallFailed(CallRule):
    id = "call_failed"
    severity = "warning"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        rec = ctx.record
        if rec.method != "INVITE" or rec.answer_ts is not None:
            return []
        cls = failure_class(rec.final_status)
        if cls is None or cls == "redirect":
            return []
        if cls in USER_OUTCOMES and not self.settings.call_failed_alert_user_outcomes:
            return []
        invite = [m for m in ctx.messages if m.is_request and m.method == "INVITE"][:1]
        return [
            self.alert(
                ctx,
                f"call failed: {rec.final_status} {rec.final_reason or ''}".rstrip() + f" ({cls})",
                {
                    "failure_class": cls,
                    "final_status": rec.final_status,
                    "final_reason": rec.final_reason,
                    "reason_header": rec.reason_header,
                },
                [*invite, *final_response(ctx)],
                severity=SEVERITY_BY_CLASS[cls],
            )
        ]
