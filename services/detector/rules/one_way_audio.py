"""one_way_audio: an answered call whose SDP agreed on two-way audio, but RTP flowed one way.

The classic NAT/firewall symptom: one side's packets never arrive. It is
judged on packet counts per direction (from the SDP addresses), so
silence suppression, which thins but never empties a direction, does not
trigger it. Calls that end on hold (sendonly/recvonly/inactive) are
skipped; a hold in the middle of a call is allowed for: each direction's
packets are weighed by the seconds its party's SDP said it was sending, so
a callee who held the call for most of it is not a one-way call.
"""

from callqual.detector.call_context import CallContext
from callqual.detector.rules.base import CallRule
from callqual.detector.rules.media import (
    MediaDirection,
    answered,
    bidirectional_intended,
    intended_send_s,
    media_negotiated,
    sdp_messages,
    stream_direction,
    talk_time_s,
)
from callqual.schemas import Alert, Severity


class OneWayAudio(CallRule):
    id = "one_way_audio"
    severity = "critical"

    def evaluate(self, ctx: CallContext) -> list[Alert]:
        s = self.settings
        if not ctx.streams:
            return []  # first: the cheapest of the checks that all end in no alert
        if not (answered(ctx) and media_negotiated(ctx) and bidirectional_intended(ctx)):
            return []
        talk = talk_time_s(ctx)
        if talk is None or talk <= s.media_min_duration_s or not ctx.streams:
            return []
        packets: dict[MediaDirection, int] = {"caller_to_callee": 0, "callee_to_caller": 0}
        unknown_sources: set[tuple[str, int]] = set()
        for st in ctx.streams:
            direction = stream_direction(ctx, st)
            if direction is None:
                unknown_sources.add((st.src_ip, st.src_port))
            else:
                packets[direction] += st.packets
        if packets["caller_to_callee"] == 0 and packets["callee_to_caller"] == 0:
            # SDP addresses match nothing (e.g. a media relay not in SDP): only a
            # single sending endpoint is conclusive.
            if len(unknown_sources) != 1:
                return []
            major_dir, major = "unknown", sum(st.packets for st in ctx.streams)
            minor = 0
        else:
            top: MediaDirection = max(packets, key=packets.__getitem__)
            quiet: MediaDirection = "callee_to_caller" if top == "caller_to_callee" else "caller_to_callee"
            major_dir, major, minor = top, packets[top], packets[quiet]
            sending = intended_send_s(ctx)
            if sending is not None:
                # On hold the quiet side is meant to be quiet: compare packets per sending second.
                if sending[quiet] < s.media_min_duration_s:
                    return []
                major_rate = major / max(sending[top], s.media_min_duration_s)
                if minor > 0 and minor / sending[quiet] >= s.one_way_min_ratio * major_rate:
                    return []
        if major < s.quality_min_packets or minor >= s.one_way_min_ratio * major:
            return []
        severity: Severity = "critical" if minor == 0 else "warning"
        return [
            self.alert(
                ctx,
                f"one-way audio: {major} packets {major_dir.replace('_', ' ')}, {minor} the other way",
                {
                    "flowing_direction": major_dir,
                    "packets_major": major,
                    "packets_minor": minor,
                    "streams": len(ctx.streams),
                    "min_ratio": s.one_way_min_ratio,
                },
                sdp_messages(ctx),
                severity=severity,
            )
        ]
