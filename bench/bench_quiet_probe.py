"""Benchmark: what the collector's quiet probe costs (issue 16), side by side with it off.

The collector core alone (no detector, no Kafka) over one capture, in a child process per run,
with ``quiet_report_interval_s`` 0 (off: the reference) and 2 (the default): CPU time
(user+sys of the child), wall time, packets/s, and the interval reports it emitted, of them
the probe's (``rtp.quiet_probe_reports``). Rounds alternate to spread the shared machine's
load over both; the load average is printed with every figure. Usage::

    python bench/bench_quiet_probe.py --capture bench/out/rtp-realistic.pcap --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys
from collections import Counter
from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
kinds = Counter()
def emit(event):
    kinds[event.kind if event.kind != "rtp_stream" else ("final" if event.final else "interval")] += 1
collector = Collector(emit, CollectorConfig(quiet_report_interval_s=float(sys.argv[2])))
with open_capture(sys.argv[1]) as capture:
    collector.run(capture)
    collector.finish()
print(json.dumps({"frames": collector.frames, "events": dict(kinds),
                  "probe_reports": collector.counters["rtp.quiet_probe_reports"]}))
"""


def _run(capture: Path, probe_s: float) -> dict[str, object]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(capture), str(probe_s)], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"collector run failed ({probe_s=})")
    result: dict[str, object] = json.loads(out)
    cpu = usage.ru_utime + usage.ru_stime
    frames = result["frames"]
    assert isinstance(frames, int)
    result.update(
        quiet_report_interval_s=probe_s,
        cpu_s=round(cpu, 2),
        wall_s=round(wall, 2),
        packets_per_cpu_s=round(frames / cpu),
        load_avg_1m=round(os.getloadavg()[0], 2),
    )
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=ROOT / "bench" / "out" / "rtp-realistic.pcap")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    runs = [_run(args.capture, probe_s) for _ in range(args.rounds) for probe_s in (0.0, 2.0)]
    for r in runs:
        print(json.dumps(r))
    best = {
        p: min(float(str(r["cpu_s"])) for r in runs if r["quiet_report_interval_s"] == p) for p in (0.0, 2.0)
    }
    print(json.dumps({"best_cpu_s": best, "ratio_probe_vs_off": round(best[2.0] / best[0.0], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
