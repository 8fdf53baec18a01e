"""Benchmark: the SIP parser alone, and the collector around it, CPU microseconds per message.

Stage 1: what ``parse_sip`` costs inside the collector, plus the fields the event reads from it
(top Via branch, Contact URI, User-Agent, tags). Stage 2: the whole collector per message
(``Collector.feed``: decoding, parsing, SDP, media learning, the event, kept in a list). The
frames are read into memory first (dpkt), so only those are timed (``time.process_time``: this
process's CPU, less noisy than wall time on a shared box); the best of ``--repeat`` passes is
printed with the load average. Compare two checkouts by
running it under each one's ``PYTHONPATH``::

    PYTHONPATH=/path/to/other/checkout python bench/bench_sip_parse.py --capture bench/out/sip-3000.pcap
    PYTHONPATH=$PWD python bench/bench_sip_parse.py --capture bench/out/sip-3000.pcap
"""

import argparse
import os
import time
from pathlib import Path

import dpkt

from callqual.collector.collector import Collector
from callqual.collector.packet import Frame
from callqual.collector.sip.message import parse_sip
from callqual.schemas import AnyEvent


def read_frames(path: Path) -> list[Frame]:
    """Every frame of a pcap, in memory."""
    with path.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        return [Frame(n, ts, linktype, bytes(buf), len(buf)) for n, (ts, buf) in enumerate(reader, 1)]


def sip_payloads(frames: list[Frame]) -> list[bytes]:
    """UDP payloads of Ethernet/IPv4 frames (what bench/make_sip_capture.py writes)."""
    out: list[bytes] = []
    for frame in frames:
        ip = dpkt.ethernet.Ethernet(frame.data).data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP):
            out.append(bytes(ip.data.data))
    return out


def one_pass(payloads: list[bytes]) -> float:
    """CPU seconds to parse every message and read what the event needs."""
    start = time.process_time()
    for data in payloads:
        msg = parse_sip(data)
        _ = (msg.via_branch, msg.contact_uri, msg.user_agent, msg.from_tag, msg.to_tag)
    return time.process_time() - start


def collector_pass(frames: list[Frame]) -> float:
    """CPU seconds for a fresh collector to take every frame (its events kept, as a sink would)."""
    events: list[AnyEvent] = []
    collector = Collector(events.append)
    start = time.process_time()
    for frame in frames:
        collector.feed(frame)
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=Path("bench/out/sip-3000.pcap"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    frames = read_frames(args.capture)
    payloads = sip_payloads(frames)
    for stage, best in (
        ("parse_sip + event fields", min(one_pass(payloads) for _ in range(args.repeat))),
        ("collector (Collector.feed)", min(collector_pass(frames) for _ in range(args.repeat))),
    ):
        print(
            f"{stage:<27} {len(payloads)} messages: {best / len(payloads) * 1e6:6.2f} us CPU/message "
            f"({len(payloads) / best:,.0f} messages/s), best of {args.repeat}, load {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
