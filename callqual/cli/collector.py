"""``callqual collector``: capture (file or interface) -> collector core -> Kafka.

Exit codes, for supervisors:

* 0 - the capture ended (or SIGTERM) and every event reached the broker
* 1 - Kafka unreachable at start-up, or a fatal producer error
* 2 - bad usage (no source, live capture unavailable)
* 3 - the capture file could not be read
* 4 - the capture file is truncated: what was readable was published
* 5 - some events never reached the broker: the count is in the last log line
"""

import argparse
from pathlib import Path
from typing import Any

from callqual.cli import jsonlog


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "collector",
        help="service: capture SIP/RTP and publish collector events to Kafka",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--pcap", type=Path, help="read this pcap/pcapng file")
    src.add_argument("--interface", help="capture live on this interface")
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--topic-prefix", help="topic name prefix (default 'callqual.')")
    p.add_argument("--partitions", type=int, help="partitions of topics created at start-up")
    p.add_argument("--buffer-max-messages", type=int, help="bound of the local queue while Kafka is away")
    p.add_argument("--pace", type=float, help="replay the file at this multiple of real time (0 = max)")
    p.add_argument("--heuristic-rtp", action="store_true", default=None, help="also RTP no SDP announced")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics and /healthz on this port")
    p.add_argument("--report-interval", dest="report_interval_s", type=float, help="seconds between reports")
    p.add_argument(
        "--quiet-report-interval",
        dest="quiet_report_interval_s",
        type=float,
        help="seconds between reports of a call whose media flows one way only (0: off)",
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from callqual.collector.service import CollectorServiceSettings, serve

    fields = (
        *("pcap", "interface", "bootstrap_servers", "topic_prefix", "partitions"),
        *("buffer_max_messages", "pace", "heuristic_rtp", "log_level", "metrics_port"),
        *("report_interval_s", "quiet_report_interval_s"),
    )
    overrides: dict[str, Any] = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    settings = CollectorServiceSettings(**overrides)
    jsonlog.setup("collector", settings.log_level)
    return serve(settings)
