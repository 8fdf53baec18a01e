"""Benchmark: how soon alerts arrive while calls happen (issue #16), through a real Kafka broker.

Two captures replayed at real time (``--pace 1``) through ``callqual collector`` and
``callqual detector``:

* ``demo`` (seed 3): failed calls, impaired calls, a scanner: the whole catalogue;
* ``midcall``: 12 normal 45 s calls (``clean``), then cut: calls 0-1 lose the callee's RTP
  12 s after answer, calls 2-3 after 7 s (one-way audio mid-call, after a long and a brief
  spell of media), calls 4-7 carry no RTP at all, calls 8-9 lose one packet in eight of the
  callee's RTP from 10 s after answer (heavy loss), 10-11 stay clean;
* any capture given with ``--also`` (e.g. the real SIPp calls of ``test_real_live_alerts.py``).

For each alert id, its first version on the alerts topic (broker timestamp) minus the wall time
at which the replay reached the moment the alert is about: the final response for
``call_failed``, ``details.since_ts`` (when the problem began to show) for a mid-call alert, and
``last_ts`` for the others. Printed per rule, split by whether the call was still up.

    python bench/bench_realtime.py --bootstrap-servers 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pipeline as bp

from callqual.schemas import Alert
from callqual.transport.topics import Topics


def _midcall(out: Path) -> Path:
    """The ``clean`` capture with the faults cut in (see the module docstring)."""
    from callqual.simulator import simulate
    from tests.detector.live_replay import filter_udp, replay

    clean = out.with_name("clean-midcall.pcap")
    simulate("clean", clean, seed=11, calls=12, duration=45)
    answers = {c.callee_ip: c.answer_ts for c in replay(clean).report.calls}
    rng = random.Random(16)

    def keep(ts: float, src: str, sport: int, dst: str, dport: int) -> bool:
        if 5060 in (sport, dport):
            return True
        n = int(src.rsplit(".", 1)[1]) - 10 if src.startswith("10.2.") else None
        m = int(dst.rsplit(".", 1)[1]) - 10 if dst.startswith("10.2.") else None
        if m is not None and 4 <= m <= 7:
            return False
        if n is None:
            return True
        answer = answers[src] or 0.0
        if 0 <= n <= 3:
            return ts < answer + (12.0 if n <= 1 else 7.0)
        if 4 <= n <= 7:
            return False
        if 8 <= n <= 9 and ts >= answer + 10.0:
            return rng.random() >= 0.125
        return True

    filter_udp(clean, out, keep)
    return out


def measure(bootstrap: str, capture: Path) -> list[dict[str, Any]]:
    _, _, _, prefix, _ = bp.run_pipeline(bootstrap, capture, 1.0, with_detector=True)
    first = next(line for line in bp.LAST_COLLECTOR_LOG if line.get("msg") == "first frame")
    t0, first_ts = float(first["ts"]), float(first["capture_ts"])
    seen: set[str] = set()
    rows = []
    for broker_ms, value in sorted(bp._read(bootstrap, Topics.with_prefix(prefix).alerts)):
        alert = Alert.model_validate_json(value)
        if alert.alert_id in seen:
            continue  # a refinement: downstream already has this alert
        seen.add(alert.alert_id)
        since = alert.details.get("since_ts") if alert.in_progress else None
        about = float(since) if isinstance(since, (int, float)) else alert.last_ts
        rows.append(
            {
                "rule": alert.rule,
                "in_progress": alert.in_progress,
                "pace": alert.details.get("sender_pace") if alert.in_progress else None,
                "latency_s": broker_ms / 1000 - (t0 + (about - first_ts)),
            }
        )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[float]] = {}
    for r in rows:
        key = (
            r["rule"] + (f" [{r['pace']}]" if r["pace"] else "") + (" (call up)" if r["in_progress"] else "")
        )
        groups.setdefault(key, []).append(r["latency_s"])
    return {
        k: {
            "n": len(v),
            "p50_s": round(bp._pct(v, 0.5), 2),
            "p90_s": round(bp._pct(v, 0.9), 2),
            "p99_s": round(bp._pct(v, 0.99), 2),
            "max_s": round(max(v), 2),
        }
        for k, v in sorted(groups.items())
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench/realtime"))
    ap.add_argument("--also", type=Path, action="append", default=[], help="another capture to measure")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from callqual.simulator import simulate

    demo = args.out / "demo-seed3.pcap"
    simulate("demo", demo, seed=3)
    midcall = _midcall(args.out / "midcall.pcap")
    captures = {"demo": demo, "midcall": midcall, **{p.stem: p for p in args.also}}
    results = {name: summarise(measure(args.bootstrap_servers, cap)) for name, cap in captures.items()}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
