"""Two checkouts' ``callqual analyze`` on one capture, run alternately: median CPU and wall of each.

On a shared machine the load drifts over minutes, so a before/after measured
minutes apart compares the load as much as the code. Alternating the runs
(A, B, A, B, ...) puts both under the same load. CPU is user+system of the
child and the workers it waited for (``wait4``). Usage::

    python bench/ab_analyze.py --capture bench/out/rtp-realistic.pcap --a /work/main --b . --runs 5
    python bench/ab_analyze.py --capture bench/out/rtp-realistic.pcap --a . --b . --b-args=--workers=2
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _run(root: Path, capture: Path, extra: list[str]) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(root)
    cmd = [sys.executable, "-m", "callqual", "analyze", str(capture), "--format", "json", "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen([*cmd, *extra], stdout=subprocess.DEVNULL, cwd=root, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{root}: analyze failed")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, required=True)
    ap.add_argument("--a", type=Path, required=True, help="checkout A (its directory)")
    ap.add_argument("--b", type=Path, required=True, help="checkout B")
    ap.add_argument("--a-args", default="", help="extra analyze flags for A, comma-separated")
    ap.add_argument("--b-args", default="", help="extra analyze flags for B, comma-separated")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    capture = args.capture.resolve()
    sides = {
        "A": (args.a.resolve(), [a for a in args.a_args.split(",") if a]),
        "B": (args.b.resolve(), [a for a in args.b_args.split(",") if a]),
    }
    results: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    load_before = os.getloadavg()[0]
    for _ in range(args.runs):
        for name, (root, extra) in sides.items():
            results[name].append(_run(root, capture, extra))
    print(f"capture {capture}, {args.runs} runs each, load {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    for name, (root, extra) in sides.items():
        cpu = [c for c, _ in results[name]]
        wall = [w for _, w in results[name]]
        print(
            f"{name} {root} {' '.join(extra)}: CPU median {statistics.median(cpu):.2f} s "
            f"({min(cpu):.2f}-{max(cpu):.2f}), wall median {statistics.median(wall):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
