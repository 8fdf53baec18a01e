"""Benchmark: the collector and detector services through a real Kafka broker.

Three measurements on one capture (default: the 1.2 M packet load capture):

1. **Publish speed**: ``callqual collector --pcap`` wall time (connect, capture,
   final flush: every event acknowledged by the broker) against ``callqual
   analyze`` wall time on the same file. Target: at least half the speed.
2. **End-to-end throughput**: collector and detector together at full speed;
   events per second from the collector's start to the detector applying the
   capture's end marker (all calls finished, outputs delivered soon after).
3. **Capture-to-alert latency**: the capture replayed at real time
   (``--pace 1``); for each alert, the broker timestamp of the alert message
   minus the wall time at which the replay reached the alert's ``last_ts``.
   This is what an operator waits between the last packet that makes an alert
   true and the alert: it includes the detector's timers (calls are finished
   ``linger_s`` after their BYE), not only transport.

Usage::

    python bench/bench_pipeline.py --bootstrap-servers 127.0.0.1:9092
    python bench/bench_pipeline.py --capture /tmp/bench/demo.pcap --latency-capture same
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from callqual.schemas import Alert
from callqual.transport.topics import Topics

ROOT = Path(__file__).resolve().parents[1]
#: The JSON log lines of the last collector run (the latency run anchors on its "first frame")
LAST_COLLECTOR_LOG: list[dict[str, Any]] = []


def _callqual(*args: str) -> list[str]:
    return [sys.executable, "-m", "callqual", *args]


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _read(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    """(broker timestamp ms, value) of every message on ``topic``."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    out: list[tuple[int, bytes]] = []
    try:
        for p in c.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            c.assign([TopicPartition(topic, p, low)])
            seen = low
            while seen < high:
                m = c.poll(5)
                if m is None:
                    break
                if m.error():
                    continue
                seen = m.offset() + 1
                out.append((m.timestamp()[1], m.value() or b""))
    finally:
        c.close()
    return out


def analyze_wall(capture: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        _callqual("analyze", str(capture), "--format", "json", "--no-progress"),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - t0


def run_pipeline(
    bootstrap: str, capture: Path, pace: float, with_detector: bool
) -> tuple[float, dict[str, Any], list[dict[str, Any]], str, float]:
    """Collector (+ detector); returns (collector wall s, its final log line, detector log, prefix, t0)."""
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    common = ["--bootstrap-servers", bootstrap, "--topic-prefix", prefix]
    det = None
    if with_detector:
        det = subprocess.Popen(
            _callqual("detector", *common, "--group-id", f"{prefix}g", "--exit-when-idle", "15"),
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)  # joined and assigned before the first event
    t0 = time.time()
    col = subprocess.run(
        _callqual("collector", *common, "--pcap", str(capture), "--pace", str(pace)),
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wall = time.time() - t0
    log = _json_lines(col.stderr)
    LAST_COLLECTOR_LOG[:] = log
    if col.returncode != 0:
        raise SystemExit(f"collector exit {col.returncode}: {log[-3:]}")
    det_log: list[dict[str, Any]] = []
    if det is not None:
        _, err = det.communicate(timeout=600)
        det_log = _json_lines(err)
    return wall, log[-1], det_log, prefix, t0


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    ap.add_argument("--capture", type=Path, default=Path("/tmp/bench/load.pcap"))
    ap.add_argument("--latency-capture", default="demo", help="'demo' (seed 3), 'same', or a path")
    args = ap.parse_args()
    cap: Path = args.capture
    if not cap.exists():
        cap.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            _callqual("simulate", "--scenario", "load", "--calls", "200", "--duration", "60", "-o", str(cap)),
            check=True,
        )
    b = args.bootstrap_servers
    results: dict[str, Any] = {"capture": str(cap)}

    embedded = analyze_wall(cap)
    wall, final, _, _, _ = run_pipeline(b, cap, 0, with_detector=False)
    frames = int(final["frames"])
    results["publish"] = {
        "frames": frames,
        "events": final["events"],
        "analyze_s": round(embedded, 2),
        "collector_s": round(wall, 2),
        "analyze_pps": round(frames / embedded),
        "collector_pps": round(frames / wall),
        "ratio": round(embedded / wall, 2),
        "lost": final["lost"],
    }

    wall, final, det_log, _, t0 = run_pipeline(b, cap, 0, with_detector=True)
    end = next(line for line in det_log if line.get("msg", "").startswith("end of capture"))
    e2e = float(end["ts"]) - t0
    results["end_to_end"] = {
        "events": final["events"],
        "seconds": round(e2e, 2),
        "events_per_s": round(int(final["events"]) / e2e),
        "frames_per_s": round(int(final["frames"]) / e2e),
        "outputs": end["outputs"],
    }

    if args.latency_capture == "same":
        lat_cap = cap
    elif args.latency_capture == "demo":
        from callqual.simulator import simulate

        lat_cap = cap.parent / "demo-seed3.pcap"
        simulate("demo", lat_cap, seed=3)
    else:
        lat_cap = Path(args.latency_capture)
    _, _, _, prefix, _ = run_pipeline(b, lat_cap, 1.0, with_detector=True)
    first = next(line for line in LAST_COLLECTOR_LOG if line.get("msg") == "first frame")
    t0, first_ts = float(first["ts"]), float(first["capture_ts"])
    alerts = [(ts, Alert.model_validate_json(v)) for ts, v in _read(b, Topics.with_prefix(prefix).alerts)]
    lat = [ts / 1000 - (t0 + (a.last_ts - first_ts)) for ts, a in alerts]
    by_rule: dict[str, list[float]] = {}
    for (_, a), x in zip(alerts, lat, strict=True):
        by_rule.setdefault(a.rule, []).append(x)
    inherent = _inherent_delays(lat_cap)
    results["latency"] = {
        "capture": str(lat_cap),
        "alerts": len(lat),
        "inherent_p50_s": round(_pct(inherent, 0.5), 2) if inherent else None,
        "inherent_p99_s": round(_pct(inherent, 0.99), 2) if inherent else None,
        "p50_s": round(_pct(lat, 0.5), 2) if lat else None,
        "p99_s": round(_pct(lat, 0.99), 2) if lat else None,
        "median_by_rule_s": {r: round(statistics.median(v), 2) for r, v in sorted(by_rule.items())},
    }
    print(json.dumps(results, indent=2))
    return 0


def _inherent_delays(path: Path) -> list[float]:
    """Per alert, capture seconds between its ``last_ts`` and its emission in ``callqual analyze``.

    The part of the latency the rules themselves impose (a call is judged once it is
    finished, ``linger_s`` after its BYE): what no transport can remove.
    """
    from callqual.collector.capture.pcap_file import open_capture
    from callqual.pipeline.embedded import EmbeddedPipeline

    pipeline = EmbeddedPipeline()
    delays: list[float] = []
    inner = pipeline.detector._emit

    def emit(out: Any) -> None:
        if isinstance(out, Alert):
            delays.append((pipeline.collector.last_ts or out.last_ts) - out.last_ts)
        inner(out)

    pipeline.detector._emit = emit
    with open_capture(path) as capture:
        for frame in capture:
            pipeline.collector.feed(frame)
        pipeline.finish()
    return delays


if __name__ == "__main__":
    sys.exit(main())
