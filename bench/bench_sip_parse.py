"""Benchmark: the SIP parser alone, CPU microseconds per message, on a capture's SIP datagrams.

What ``parse_sip`` costs inside the collector, plus the fields the event reads from it (top Via
branch, Contact URI, User-Agent). The datagrams are read into memory first (dpkt), so only the
parser is timed (``time.process_time``: this process's CPU, less noisy than wall time on a shared
box); the best of ``--repeat`` passes is printed with the load average. Compare two checkouts by
running it under each one's ``PYTHONPATH``::

    PYTHONPATH=/path/to/other/checkout python bench/bench_sip_parse.py --capture bench/out/sip-3000.pcap
    PYTHONPATH=$PWD python bench/bench_sip_parse.py --capture bench/out/sip-3000.pcap
"""

import argparse
import os
import time
from pathlib import Path

import dpkt

from callqual.collector.sip.message import parse_sip


def sip_payloads(path: Path) -> list[bytes]:
    """UDP payloads of an Ethernet/IPv4 capture (what bench/make_sip_capture.py writes)."""
    out: list[bytes] = []
    with path.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=Path("bench/out/sip-3000.pcap"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    payloads = sip_payloads(args.capture)
    best = min(one_pass(payloads) for _ in range(args.repeat))
    load = os.getloadavg()[0]
    print(
        f"{len(payloads)} messages: {best / len(payloads) * 1e6:.2f} us CPU/message "
        f"({len(payloads) / best:,.0f} messages/s), best of {args.repeat}, load {load:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
