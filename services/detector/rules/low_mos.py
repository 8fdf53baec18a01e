"""low_mos: the worst stream of the call has an E-model MOS below the SLA floor.

The *minimum* stream MOS is used because a call is as bad as its worse
direction: users complain about what they hear. It fires only when loss or
jitter took the MOS down from what the codec gives on a clean path, so a
deliberately low-rate codec is not reported as a network incident.
"""

from callqual.detector.call_context import CallContext
from callqual.detector.emodel import DEFAULT_ONE_WAY_DELAY_MS, mos_from_r, r_factor
from callqual.detector.rules.base import CallRule
from callqual.detector.rules.media import judged_streams, sdp_messages
from callqual.schemas import Alert, Severity


class LowMos(CallRule):
    id = "low_mos"
    severity = "warning"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        s = self.settings
        scored = [st for st in judged_streams(ctx, s.quality_min_packets) if st.mos is not None]
        if not scored:
            return []
        worst = min(scored, key=lambda st: st.mos if st.mos is not None else 5.0)
        mos = worst.mos
        assert mos is not None
        if mos >= s.low_mos_warning:
            return []
        ceiling = mos_from_r(r_factor(worst.codec, 0.0, 1.0, DEFAULT_ONE_WAY_DELAY_MS))
        if ceiling - mos < s.low_mos_min_network_drop:
            return []
        severity: Severity = "critical" if mos < s.low_mos_critical else "warning"
        return [
            self.alert(
                ctx,
                f"MOS {mos:.2f} on stream {worst.src_ip}:{worst.src_port} -> {worst.dst_ip}:{worst.dst_port}",
                {
                    "min_mos": round(mos, 3),
                    "r_factor": worst.r_factor,
                    "ssrc": worst.ssrc,
                    "codec": worst.codec,
                    "codec_ceiling_mos": round(ceiling, 3),
                    "threshold": s.low_mos_critical if severity == "critical" else s.low_mos_warning,
                },
                sdp_messages(ctx),
                severity=severity,
            )
        ]
