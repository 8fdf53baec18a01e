"""sip_retransmissions: the call's transactions needed repeated retransmissions.

Over UDP each retransmission means a request or response was lost or a
peer answered slower than T1 (500 ms): signalling path loss or an
overloaded proxy, both of which precede failed calls.
"""

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.schemas import Alert, SipMessageEvent


def retransmitted(messages: list[SipMessageEvent]) -> list[SipMessageEvent]:
    """Messages identical (same direction, start line, branch and CSeq) to an earlier one."""
    seen: set[tuple[object, ...]] = set()
    out: list[SipMessageEvent] = []
    for m in messages:
        key = (m.src_ip, m.src_port, m.first_line, m.via_branch, m.cseq_num, m.cseq_method)
        if key in seen:
            out.append(m)
        else:
            seen.add(key)
    return out


class SipRetransmissions(CallRule):
    id = "sip_retransmissions"
    severity = "warning"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        n = ctx.record.retransmissions
        if n < self.settings.sip_retransmissions_min:
            return []
        return [
            self.alert(
                ctx,
                f"{n} SIP retransmissions",
                {"retransmissions": n, "messages": ctx.record.messages},
                retransmitted(ctx.messages),
            )
        ]
