"""Benchmark: the CPU of ``analyze --split``'s collector process, in-process, two checkouts alternately.

The child (``split._collect``: reading, decoding, SIP parsing, events, the handed-over source
rules, batching and ``encode_batch``) is timed on its own with ``time.process_time()``, the pipe
replaced by a byte counter, after the pipeline is built as ``analyze`` builds it. Each round runs
every checkout once, in turn, in a fresh interpreter (the checkout on ``PYTHONPATH``), so a busy
box slows both alike; per checkout the runs and their minimum are printed, with the load average::

    python bench/split_child_cpu.py --capture bench/out/sip.pcap --rounds 3 --against /tmp/base
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Run under a checkout's PYTHONPATH: prints the child's CPU seconds and the bytes it sent.
_CHILD = """
import sys, time
from callqual.cli.gc_tuning import tune_gc_for_throughput
from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline import split
from callqual.pipeline.embedded import EmbeddedPipeline

class Counter:
    sent = 0
    def send_bytes(self, data): Counter.sent += len(data)
    def close(self): pass

tune_gc_for_throughput()
pipeline = EmbeddedPipeline(compact_outputs=True)
rules = pipeline.hand_over_source_rules(split.KEEP_FROM)
with open_capture(sys.argv[1]) as capture:
    start = time.process_time()
    split._collect(capture, pipeline.collector.config, rules, Counter())
    print(time.process_time() - start, Counter.sent)
"""


def one_run(checkout: Path, capture: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(capture)], env=env, capture_output=True, text=True, check=True
    )
    cpu, sent = out.stdout.split()
    return float(cpu), int(sent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=ROOT / "bench/out/sip.pcap")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--against", type=Path, action="append", default=[], help="another checkout")
    args = ap.parse_args()
    checkouts = [ROOT, *args.against]
    runs: dict[Path, list[float]] = {c: [] for c in checkouts}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for checkout in checkouts:
            cpu, sent = one_run(checkout, args.capture.resolve())
            runs[checkout].append(cpu)
            print(f"{checkout}: child CPU {cpu:.2f} s, {sent / 1e6:.1f} MB sent", flush=True)
    print(f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    for checkout, cpus in runs.items():
        print(f"{checkout}: min {min(cpus):.2f} s, all {', '.join(f'{c:.2f}' for c in cpus)}")


if __name__ == "__main__":
    main()
