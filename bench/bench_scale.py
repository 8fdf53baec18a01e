"""Benchmark: events/s through a detector group of 1 and 2 members, and consumer lag over time.

The capture is published once per run (not timed) to 6 partitions under a fresh topic prefix;
then N ``callqual detector`` members (``--stage both``: call stage and source stage in each
process) start together. Each member logs its progress every second; the bench sums them:

- **events/s**: events applied by the call stage, from the first applied to the last, over
  that span (group joining and the exit-when-idle wait are left out);
- **lag over time**: events published minus events the members had received, each second;
- **reference**: the detector core alone (``Detector`` fed the same events in one process,
  no Kafka), what one member could at best do.

Usage::

    python bench/bench_scale.py --bootstrap-servers 127.0.0.1:9092 [--capture FILE] [--members 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.detector.detector import Detector
from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules.settings import RuleSettings
from callqual.schemas import AnyEvent
from callqual.simulator import simulate

PARTITIONS = 6


def _callqual(*args: str) -> list[str]:
    return [sys.executable, "-m", "callqual", *args]


def reference_events_per_s(capture: Path) -> tuple[int, float]:
    """The detector core alone over the capture's events: (events, events/s)."""
    events: list[AnyEvent] = []
    collector = Collector(events.append)
    with open_capture(capture) as source:
        collector.run(source)
    collector.finish()
    detector = Detector(lambda _out: None, RuleEngine(RuleSettings()))
    t0 = time.perf_counter()
    for event in events:
        detector.handle(event)
    detector.finish()
    return len(events), len(events) / (time.perf_counter() - t0)


def memory_per_open_call(capture: Path) -> tuple[int, float]:
    """Open calls at the capture's busiest point and the detector core's bytes per open call there.

    The collector's events are fed up to the moment the most calls are open (all calls of the
    load scenario overlap), with tracemalloc counting what the detector holds.
    """
    import tracemalloc

    events: list[AnyEvent] = []
    collector = Collector(events.append)
    with open_capture(capture) as source:
        collector.run(source)
    collector.finish()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    detector = Detector(lambda _out: None, RuleEngine(RuleSettings()))
    peak_calls, peak_bytes = 0, 0
    for n, event in enumerate(events):
        detector.handle(event)
        if n % 500 == 0 and len(detector.assembler) > peak_calls:
            peak_calls = len(detector.assembler)
            peak_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return peak_calls, peak_bytes / max(peak_calls, 1)


def run_group(bootstrap: str, capture: Path, members: int) -> dict[str, Any]:
    prefix = f"scale{uuid.uuid4().hex[:8]}."
    common = ["--bootstrap-servers", bootstrap, "--topic-prefix", prefix, "--partitions", str(PARTITIONS)]
    published = subprocess.run(
        _callqual("collector", *common, "--pcap", str(capture)), capture_output=True, text=True, check=True
    )
    events = int(json.loads(published.stderr.strip().splitlines()[-1])["events"])
    env = {**os.environ, "CALLQUAL_DETECTOR_STATS_INTERVAL_S": "1"}
    procs = [
        subprocess.Popen(
            _callqual("detector", *common, "--group-id", f"g{prefix}", "--exit-when-idle", "6"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(members)
    ]
    logs = [
        [json.loads(line) for line in p.communicate(timeout=900)[1].splitlines() if line.strip()]
        for p in procs
    ]
    # Per second, per member: the latest counters of its call stage.
    received: dict[int, dict[int, int]] = defaultdict(dict)
    applied: dict[int, dict[int, int]] = defaultdict(dict)
    for i, log in enumerate(logs):
        for line in log:
            if line.get("msg") in ("detector progress", "detector stopped") and "applied" in line:
                second = int(float(line["ts"]))
                received[second][i] = int(line["messages"])
                applied[second][i] = int(line["applied"])
    seconds = sorted(received)
    last_received = [0] * members
    last_applied = [0] * members
    lag_series: list[tuple[int, int]] = []
    applied_series: list[tuple[float, int]] = []
    for s in seconds:
        for i, n in received[s].items():
            last_received[i] = n
        for i, n in applied[s].items():
            last_applied[i] = n
        lag_series.append((s - seconds[0], max(0, events - sum(last_received))))
        applied_series.append((s, sum(last_applied)))
    moving = [t for t, n in applied_series if n > 0]
    first = moving[0]
    done = next(t for t, n in applied_series if n == applied_series[-1][1])
    span = max(done - first, 1.0)
    return {
        "members": members,
        "events": events,
        "applied": applied_series[-1][1],
        "span_s": span,
        "events_per_s": applied_series[-1][1] / span,
        "lag": lag_series,
        "exit_codes": [p.returncode for p in procs],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    ap.add_argument("--capture", type=Path, help="default: 6,000 concurrent 1 s calls (load scenario)")
    ap.add_argument("--members", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    capture = args.capture
    if capture is None:
        capture = Path("/tmp/bench-scale-load.pcap")
        if not capture.exists():
            simulate("load", capture, calls=6000, duration=1)
    events, ref = reference_events_per_s(capture)
    print(f"capture {capture}: {events} events; detector core alone: {ref:,.0f} events/s")
    calls, per_call = memory_per_open_call(capture)
    print(f"detector core memory: {per_call / 1024:.1f} KiB per open call ({calls} calls open)")
    for n in args.members:
        r = run_group(args.bootstrap_servers, capture, n)
        print(
            f"{n} member(s): {r['applied']} events applied in {r['span_s']:.1f} s = "
            f"{r['events_per_s']:,.0f} events/s ({r['events_per_s'] / ref:.2f} x core alone), "
            f"exit codes {r['exit_codes']}"
        )
        print(
            "  lag (s since first progress line: events not yet received): "
            + ", ".join(f"{t}:{lag}" for t, lag in r["lag"])
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
