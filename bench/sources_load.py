"""How the call stage's output spreads over the ``sources`` partitions (no broker, no timing).

The capture goes through the collector service and one call-stage member over the in-process
bus (``tests/detector/member_harness.py``); then, per ``sources`` partition, the messages are
counted by kind: observation copies, finished-call batches, markers. The flood total's
all-sources key (``*``) is named, so its partition's excess over the mean shows.

Usage::

    python bench/sources_load.py CAPTURE [--partitions 6]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from callqual.detector.source_routing import ALL_SOURCES, partition_of
from callqual.detector.stages.call_judgement import H_PART
from callqual.transport import InProcessBus
from callqual.transport.ordering import header_dict, marker_of
from tests.detector import member_harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--partitions", type=int, default=member_harness.PARTITIONS)
    args = parser.parse_args()
    member_harness.PARTITIONS = args.partitions
    log = member_harness.publish_capture(args.capture, partitions=args.partitions)
    bus = InProcessBus(max_messages_per_topic=10_000_000, partitions=args.partitions)
    member_harness._call_stage(log, bus, 1, kill=False)
    star = partition_of(ALL_SOURCES, args.partitions)
    counts: dict[int, Counter[str]] = {}
    for p, messages in member_harness._drain(bus, "t.sources").items():
        kinds: Counter[str] = Counter()
        for m in messages:
            headers = header_dict(m.headers)
            kinds["marker" if marker_of(headers) else headers.get(H_PART, b"observation").decode()] += 1
        counts[p] = kinds
    mean = sum(c["observation"] for c in counts.values()) / len(counts)
    for p, kinds in sorted(counts.items()):
        label = " (all sources)" if p == star else ""
        excess = kinds["observation"] / mean - 1 if mean else 0.0
        print(f"partition {p}{label}: {dict(kinds)}  observations {excess:+.0%} vs mean")


if __name__ == "__main__":
    main()
