"""dropped_call: an answered call that did not end with an ordinary hang-up.

Two shapes: no BYE at all (the assembler closed the call on media/dialog
timeout, state ``answered``), or a BYE whose Reason header (RFC 3326)
carries an abnormal cause, e.g. Q.850 cause 38 "network out of order"
from a gateway. Q.850 16/31 and SIP causes below 300 are normal.
"""

import contextlib

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.schemas import Alert, SipMessageEvent


def parse_reason(value: str) -> list[tuple[str, int]]:
    """``'Q.850;cause=16;text="x", SIP;cause=200'`` -> ``[("Q.850", 16), ("SIP", 200)]``."""
    out: list[tuple[str, int]] = []
    for part in value.split(","):
        fields = [f.strip() for f in part.split(";")]
        if not fields or not fields[0]:
            continue
        proto = fields[0].upper()
        for f in fields[1:]:
            key, _, val = f.partition("=")
            if key.strip().lower() == "cause":
                with contextlib.suppress(ValueError):
                    out.append((proto, int(val.strip().strip('"'))))
    return out


class DroppedCall(CallRule):
    id = "dropped_call"
    severity = "warning"

    def _abnormal(self, reason: str) -> tuple[str, int] | None:
        normal = set(self.settings.dropped_call_normal_q850_causes)
        for proto, cause in parse_reason(reason):
            if (proto == "Q.850" and cause not in normal) or (proto == "SIP" and cause >= 300):
                return proto, cause
        return None

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        rec = ctx.record
        # Still up when the capture ended is not dropped, unless media and signalling had
        # already been silent for a timeout's worth of capture time by then.
        silent_s = ctx.closed_ts - ctx.last_activity_ts
        if rec.state == "answered" and (
            ctx.closed_by in ("timeout", "evicted") or silent_s >= self.settings.dropped_call_silence_s
        ):
            return [
                self.alert(
                    ctx,
                    f"answered call ended without BYE (silent for {silent_s:.0f} s)",
                    {"reason": "no_bye", "duration_s": rec.duration_s, "silent_s": round(silent_s, 3)},
                    [m for m in ctx.messages if m.cseq_method == "INVITE" and m.status_code == 200],
                )
            ]
        if rec.state != "completed":
            return []
        byes: list[SipMessageEvent] = [m for m in ctx.messages if m.is_request and m.method == "BYE"]
        candidates: list[tuple[str, list[SipMessageEvent]]] = [
            (m.reason_header, [m]) for m in byes if m.reason_header
        ]
        if not candidates and rec.reason_header:
            candidates.append((rec.reason_header, byes))
        for reason, evidence in candidates:
            bad = self._abnormal(reason)
            if bad is None:
                continue
            proto, cause = bad
            return [
                self.alert(
                    ctx,
                    f"call ended with abnormal cause {proto} {cause} "
                    f"(hangup by {rec.hangup_by or 'unknown'})",
                    {
                        "reason": "abnormal_cause",
                        "protocol": proto,
                        "cause": cause,
                        "reason_header": reason,
                        "hangup_by": rec.hangup_by,
                        "duration_s": rec.duration_s,
                    },
                    evidence,
                )
            ]
        return []
