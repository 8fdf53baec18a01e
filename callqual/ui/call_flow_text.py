"""The call flow as plain text (``/calls/{id}.txt``): what you paste into a ticket."""

from collections.abc import Sequence
from datetime import datetime

from callqual.ui.ladder import endpoint, message_label
from callqual.ui.model import SipMessageLike, StreamLike


def render_call_flow(
    call_id: str, messages: Sequence[SipMessageLike], streams: Sequence[StreamLike] = ()
) -> str:
    """One line per message (time, delta, from -> to, transport, label), then the streams."""
    lines = [f"Call-ID: {call_id}", f"{len(messages)} SIP messages, {len(streams)} RTP streams", ""]
    previous: datetime | None = None
    for i, m in enumerate(messages, 1):
        delta = (m.ts - previous).total_seconds() if previous else 0.0
        previous = m.ts
        lines.append(
            f"{i:>4}  {m.ts.isoformat(timespec='milliseconds')}  +{delta:8.3f}s  frame {m.frame:<6}"
            f"{endpoint(m.src_ip, m.src_port):>28} -> {endpoint(m.dst_ip, m.dst_port):<28}"
            f"{m.transport.upper():<5} {message_label(m)}"
        )
    if streams:
        lines += ["", "RTP streams:"]
    for s in streams:
        mos = f"{s.mos:.2f}" if s.mos is not None else "-"
        lines.append(
            f"  SSRC 0x{s.ssrc:08x}  {endpoint(s.src_ip, s.src_port)} -> {endpoint(s.dst_ip, s.dst_port)}"
            f"  {s.codec or '?'}  packets {s.packets}  lost {s.lost}  MOS {mos}"
        )
    return "\n".join(lines) + "\n"
