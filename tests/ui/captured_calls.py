"""SIP messages taken from the shared captures, shaped as the store gives them to the UI.

The collector finds the SIP messages (frame, time, addresses, transport); dpkt reads each
one's bytes back from its frame, so the UI's pure pieces are tested on real traffic before
(and independently of) the store.
"""

from datetime import UTC, datetime
from pathlib import Path

import dpkt

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnyEvent, SipMessageEvent, StreamRecord
from callqual.ui.model import SipMessage, Stream
from tests.shared_captures import PCAPS


def _payloads(path: Path) -> dict[int, bytes]:
    """Frame number -> UDP/TCP payload, for Ethernet captures with IPv4 or IPv6."""
    out: dict[int, bytes] = {}
    with path.open("rb") as f:
        for number, (_, buf) in enumerate(dpkt.pcap.Reader(f), 1):
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) and isinstance(ip.data, dpkt.udp.UDP | dpkt.tcp.TCP):
                out[number] = bytes(ip.data.data)
    return out


def captured_call(name: str) -> tuple[list[SipMessage], list[Stream]]:
    """All SIP messages of a (single-call) shared capture in time order, and its RTP streams."""
    path = PCAPS / name
    events: list[SipMessageEvent] = []

    def keep(event: AnyEvent) -> None:
        if isinstance(event, SipMessageEvent):
            events.append(event)

    pipeline = EmbeddedPipeline(on_event=keep)
    with open_capture(path) as capture:
        pipeline.run(capture)
        pipeline.finish()
    report = pipeline.report(str(path))
    payloads = _payloads(path)
    seen: set[tuple[str, str | None, int]] = set()
    messages = []
    for i, e in enumerate(events, 1):
        key = (e.first_line, e.via_branch, e.src_port)
        messages.append(
            SipMessage(
                id=i,
                ts=datetime.fromtimestamp(e.ts, UTC),
                frame=e.frame,
                src_ip=e.src_ip,
                src_port=e.src_port,
                dst_ip=e.dst_ip,
                dst_port=e.dst_port,
                transport=e.transport,
                method=e.method,
                status_code=e.status_code,
                retransmission=key in seen,
                first_line=e.first_line,
                raw=e.raw if e.transport in ("sctp", "ws") else payloads[e.frame],  # unframed by us
                cseq=f"{e.cseq_num} {e.cseq_method}",
            )
        )
        seen.add(key)
    return messages, [_stream(s) for s in report.streams]


def _stream(s: StreamRecord) -> Stream:
    return Stream(s.ssrc, s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.codec, s.packets, s.lost, s.mos)
