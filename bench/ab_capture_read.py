"""Two checkouts' capture readers alone, run alternately: CPU to read a file frame by frame and in batches.

``analyze`` spends most of its time after the reader, so a change in the reader
hides in its noise; this times only ``open_capture`` and the iteration (frames:
``for frame in capture``; batches: ``capture.record_batches()``), in a fresh
process per run, A and B alternating so that both see the same load. Usage::

    python bench/ab_capture_read.py --capture bench/out/rtp-realistic.pcap --a /tmp/base --b . --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

#: Run in the child: read the whole capture one way, print the CPU seconds it took and what it counted.
_CHILD = """
import resource, sys
from callqual.collector.capture.pcap_file import open_capture
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
path, view = sys.argv[1], sys.argv[2]
start = cpu()
with open_capture(path) as capture:
    if view == "frames":
        n = sum(1 for _ in capture)
    else:
        n = sum(len(batch) for batch in capture.record_batches())
print(cpu() - start, n)
"""


def _run(root: Path, capture: Path, view: str) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(capture), view], cwd=root, env=env, check=True, capture_output=True
    ).stdout.split()
    return float(out[0]), int(out[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, required=True)
    ap.add_argument("--a", type=Path, required=True, help="checkout A (its directory)")
    ap.add_argument("--b", type=Path, required=True, help="checkout B")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    for view in ("frames", "batches"):
        times: dict[str, list[float]] = {"a": [], "b": []}
        counts = set()
        for _ in range(args.runs):
            for name, root in (("a", args.a), ("b", args.b)):
                cpu, n = _run(root.resolve(), args.capture.resolve(), view)
                times[name].append(cpu)
                counts.add(n)
        a, b = statistics.median(times["a"]), statistics.median(times["b"])
        n = counts.pop() if len(counts) == 1 else -1
        print(
            f"{view}: {n} packets (-1 would mean A and B counted differently); CPU median of {args.runs}: "
            f"A {a:.3f} s ({min(times['a']):.3f}-{max(times['a']):.3f}), "
            f"B {b:.3f} s ({min(times['b']):.3f}-{max(times['b']):.3f}), B/A {b / a:.3f}; "
            f"B {n / b / 1e6:.2f} M packets/s"
        )
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
