"""Replays a capture through the embedded pipeline, noting the capture time each alert was raised at.

"Raised at" is the capture time of the event being handled when the detector emitted the
alert: what a consumer at real-time pace sees as the alert's delay, minus transport.
"""

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import Alert, AnalysisReport, AnyEvent

#: (ts, src ip, src port, dst ip, dst port) -> keep the UDP datagram?
UdpFilter = Callable[[float, str, int, str, int], bool]


@dataclass
class Replay:
    report: AnalysisReport
    #: every alert version the detector emitted, with the capture time it was raised at
    raised: list[tuple[float, Alert]] = field(default_factory=list)

    def versions(self, rule: str, call_id: str) -> list[tuple[float, Alert]]:
        return [(at, a) for at, a in self.raised if a.rule == rule and a.call_id == call_id]

    def final(self, rule: str, call_id: str) -> list[Alert]:
        return [a for a in self.report.alerts if a.rule == rule and a.call_id == call_id]


def replay(path: Path) -> Replay:
    clock = [float("-inf")]

    def note(event: AnyEvent) -> None:
        clock[0] = max(clock[0], event.last_ts if event.kind == "rtp_stream" else event.ts)

    pipeline = EmbeddedPipeline(on_event=note)
    raised: list[tuple[float, Alert]] = []
    keep = pipeline.detector._emit

    def emit(out: object) -> None:
        if isinstance(out, Alert):
            raised.append((clock[0], out))
        keep(out)  # type: ignore[arg-type]

    pipeline.detector._emit = emit
    with open_capture(path) as capture:
        pipeline.run(capture)
        pipeline.finish()
        return Replay(pipeline.report(str(path)), raised)


def filter_udp(src: Path, dst: Path, keep: UdpFilter) -> int:
    """Copies an Ethernet/IPv4 capture, leaving out the UDP datagrams ``keep`` refuses; returns how many."""
    dropped = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        reader = dpkt.pcap.Reader(fin)
        writer = dpkt.pcap.Writer(fout, linktype=reader.datalink(), nano=False)
        for ts, buf in reader:
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP):
                udp = ip.data
                src, dst = socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst)
                if not keep(float(ts), src, udp.sport, dst, udp.dport):
                    dropped += 1
                    continue
            writer.writepkt(buf, ts)
    return dropped
