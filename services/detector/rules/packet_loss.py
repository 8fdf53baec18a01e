"""packet_loss: a stream lost more than a few percent of its packets.

Loss is the larger of what the sensor measured (sequence gaps) and what
the receiver reported in RTCP: the sensor only sees losses upstream of
itself, RTCP sees the whole path.
"""

from callqual.detector.call_context import CallContext
from callqual.detector.emodel import loss_ratio as network_loss_ratio
from callqual.detector.rules.base import CallRule
from callqual.detector.rules.media import judged_streams, sdp_messages
from callqual.schemas import Alert, Severity, StreamRecord


def loss_ratio(stream: StreamRecord) -> float:
    measured = network_loss_ratio(stream)
    reported = stream.rtcp_fraction_lost if stream.rtcp_fraction_lost is not None else 0.0
    return max(measured, reported)


class PacketLoss(CallRule):
    id = "packet_loss"
    severity = "warning"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        s = self.settings
        streams = judged_streams(ctx, s.quality_min_packets)
        if not streams:
            return []
        worst = max(streams, key=loss_ratio)
        ratio = loss_ratio(worst)
        if ratio <= s.packet_loss_warning_ratio:
            return []
        severity: Severity = "critical" if ratio > s.packet_loss_critical_ratio else "warning"
        return [
            self.alert(
                ctx,
                f"{ratio:.1%} packet loss on stream {worst.src_ip}:{worst.src_port} -> "
                f"{worst.dst_ip}:{worst.dst_port}",
                {
                    "loss_ratio": round(ratio, 5),
                    "lost": worst.lost,
                    "expected": worst.expected,
                    "rtcp_fraction_lost": worst.rtcp_fraction_lost,
                    "ssrc": worst.ssrc,
                    "threshold": s.packet_loss_warning_ratio,
                },
                sdp_messages(ctx),
                severity=severity,
            )
        ]
