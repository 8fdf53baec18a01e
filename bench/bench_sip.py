"""Benchmark: ``callqual analyze`` against ``tshark -q -z sip,stat`` on a signalling-only capture.

Both run on the same file one after the other in one invocation; the script
prints wall time, CPU time, messages/s and peak RSS (``wait4`` rusage of each
child), the ratio, and checks that both counted the same number of SIP
messages. Usage::

    python bench/make_sip_capture.py            # once: bench/out/sip.pcap, 30,000 calls
    python bench/bench_sip.py [--capture bench/out/sip.pcap] [--repeat 3]
"""

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: The children's environment: bytecode caching on, as for an installed package (pip compiles
#: it), even where the shell sets PYTHONDONTWRITEBYTECODE (this machine does: every run then
#: compiled all of callqual's source again, ~0.15 s of CPU that no user pays).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _compile_bytecode() -> None:
    """What ``pip install`` does: byte-compile the package once, so no timed run compiles it."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "callqual", "services", "schemas"],
        check=True,
        cwd=ROOT,
        env=_ENV,
        stdout=subprocess.DEVNULL,
    )


def _tree_pss_kib(pid: int) -> int:
    """Proportional set size (KiB) of ``pid`` plus its children's (``analyze --split`` forks).

    PSS, not RSS: a forked child shares the parent's pages copy-on-write, and RSS would count
    those twice.
    """
    total = 0
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for p in [str(pid), *kids]:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    except (OSError, ValueError):
        pass  # the process ended between two reads
    return total


def _run(cmd: list[str], stdout_path: Path) -> tuple[float, float, int, int]:
    """(wall s, CPU s, peak RSS KiB, peak PSS of the process tree KiB sampled every 0.5 s) of one child.

    ``ru_maxrss`` of a process that forked is the larger of the two peaks, not their sum: the
    tree's is sampled, so that two processes cannot hide half their memory.
    """
    with stdout_path.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT, env=_ENV)
        tree_peak = 0
        for tick in itertools.count():
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if tick % 25 == 0:  # reading smaps walks the page tables under the child's mmap lock
                tree_peak = max(tree_peak, _tree_pss_kib(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, tree_peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=ROOT / "bench/out/sip.pcap")
    ap.add_argument("--repeat", type=int, default=1, help="paired runs; medians are printed")
    ap.add_argument("--split", action="store_true", help="run ours as analyze --split (two processes)")
    args = ap.parse_args()
    cap: Path = args.capture
    out_dir = ROOT / "bench/out"
    out_dir.mkdir(parents=True, exist_ok=True)
    ours_json, theirs_txt = out_dir / "bench-sip.json", out_dir / "bench-sip-tshark.txt"
    ours_cmd = [sys.executable, "-m", "callqual", "analyze", str(cap), "--format", "json", "--no-progress"]
    ours_cmd += ["--split"] if args.split else []
    theirs_cmd = ["tshark", "-q", "-r", str(cap), "-z", "sip,stat"]
    _compile_bytecode()
    load_before = os.getloadavg()[0]
    rows: list[tuple[tuple[float, float, int, int], tuple[float, float, int, int]]] = []
    for _ in range(args.repeat):
        rows.append((_run(ours_cmd, ours_json), _run(theirs_cmd, theirs_txt)))
    load_after = os.getloadavg()[0]

    report = json.loads(ours_json.read_text())
    ours_msgs = int(report["summary"]["sip_messages"])
    match = re.search(r"Number of SIP messages: (\d+)", theirs_txt.read_text())
    theirs_msgs = int(match.group(1)) if match else -1

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    print(f"capture          {cap} ({theirs_msgs} SIP messages by tshark, {cap.stat().st_size / 1e6:.1f} MB)")
    print(
        f"machine          {os.cpu_count()} CPUs, load average {load_before:.2f} before, "
        f"{load_after:.2f} after"
    )
    for name, idx, msgs in (("callqual analyze", 0, ours_msgs), ("tshark sip,stat", 1, theirs_msgs)):
        wall = median([r[idx][0] for r in rows])
        cpu = median([r[idx][1] for r in rows])
        rss = max(r[idx][2] for r in rows) / 1024
        tree = max(r[idx][3] for r in rows) / 1024
        print(
            f"{name:<16} {wall:7.2f} s (CPU {cpu:6.2f} s) {msgs / wall:9.0f} msg/s  peak RSS {rss:6.1f} MiB"
            f" (process tree PSS {tree:6.1f} MiB)"
        )
    ratios = [r[1][0] / r[0][0] for r in rows]
    cpu_ratios = [r[1][1] / r[0][1] for r in rows]
    print(
        "ratio            "
        + " ".join(f"{x:.2f}x" for x in ratios)
        + f" (median {median(ratios):.2f}x, by CPU {median(cpu_ratios):.2f}x; tshark time / callqual time)"
    )
    print(f"messages         ours {ours_msgs}, tshark {theirs_msgs}")
    return 0 if ours_msgs == theirs_msgs else 1


if __name__ == "__main__":
    sys.exit(main())
