"""Benchmark: ``callqual analyze`` against ``tshark -q -z sip,stat`` on a signalling-only capture.

Both run on the same file one after the other in one invocation; the script
prints wall time, CPU time, messages/s and peak RSS (``wait4`` rusage of each
child), the ratio, and checks that both counted the same number of SIP
messages. Usage::

    python bench/make_sip_capture.py            # once: bench/out/sip.pcap, 30,000 calls
    python bench/bench_sip.py [--capture bench/out/sip.pcap] [--repeat 3] [--split | --no-split]
    python bench/bench_sip.py --repeat 3 --against /tmp/base --against-args=--split   # A/B, alternating

"main process" CPU is the analyze process's own, without its forked collector's: with the
collector split off it is the detector's side, the one that bounds the wall time.
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


_TICK_S = os.sysconf("SC_CLK_TCK")


def _own_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of ``pid`` itself, not of its children (``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK_S


Run = tuple[float, float, int, int, float]


def _run(cmd: list[str], stdout_path: Path, cwd: Path = ROOT, env: dict[str, str] = _ENV) -> Run:
    """(wall s, CPU s, peak RSS KiB, peak tree PSS KiB sampled every 0.5 s, own CPU s) of one child.

    ``ru_maxrss`` of a process that forked is the larger of the two peaks, not their sum: the
    tree's is sampled, so that two processes cannot hide half their memory. "Own CPU" is the
    process's CPU without the children it reaped (``analyze --split``: the detector's process,
    the critical path), read every 20 ms until it exits.
    """
    with stdout_path.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, cwd=cwd, env=env)
        tree_peak = 0
        own = 0.0
        for tick in itertools.count():
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            own = _own_cpu_s(proc.pid) or own
            if tick % 25 == 0:  # reading smaps walks the page tables under the child's mmap lock
                tree_peak = max(tree_peak, _tree_pss_kib(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, tree_peak, own


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=ROOT / "bench/out/sip.pcap")
    ap.add_argument("--repeat", type=int, default=1, help="paired runs; medians are printed")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--split", action="store_true", help="run ours as analyze --split (two processes)")
    mode.add_argument("--no-split", action="store_true", help="run ours as analyze --no-split (one process)")
    ap.add_argument(
        "--against",
        type=Path,
        help="another checkout (e.g. main, `git worktree add`): its analyze runs alternately with ours",
    )
    ap.add_argument("--against-args", default="", help="its extra analyze flags, comma-separated")
    args = ap.parse_args()
    cap: Path = args.capture
    out_dir = ROOT / "bench/out"
    out_dir.mkdir(parents=True, exist_ok=True)
    ours_json, theirs_txt = out_dir / "bench-sip.json", out_dir / "bench-sip-tshark.txt"
    ours_cmd = [sys.executable, "-m", "callqual", "analyze", str(cap), "--format", "json", "--no-progress"]
    base_cmd = list(ours_cmd)
    ours_cmd += ["--split"] if args.split else ["--no-split"] if args.no_split else []
    theirs_cmd = ["tshark", "-q", "-r", str(cap), "-z", "sip,stat"]
    _compile_bytecode()
    against: list[Run] = []
    if args.against is not None:
        other = args.against.resolve()
        other_cmd = [*base_cmd, *(a for a in args.against_args.split(",") if a)]
        other_env = {**_ENV, "PYTHONPATH": str(other)}
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "callqual"], cwd=other, env=other_env, check=True
        )
    load_before = os.getloadavg()[0]
    rows: list[tuple[Run, Run]] = []
    for _ in range(args.repeat):
        if args.against is not None:
            against.append(_run(other_cmd, out_dir / "bench-sip-against.json", other, other_env))
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
    runs = [
        ("callqual analyze", [r[0] for r in rows], ours_msgs),
        ("tshark sip,stat", [r[1] for r in rows], theirs_msgs),
    ]
    if against:
        runs.insert(1, (f"against {args.against}", against, ours_msgs))
    for name, these, msgs in runs:
        wall = median([r[0] for r in these])
        cpu = median([r[1] for r in these])
        own = median([r[4] for r in these])
        rss = max(r[2] for r in these) / 1024
        tree = max(r[3] for r in these) / 1024
        print(
            f"{name:<16} {wall:7.2f} s (CPU {cpu:6.2f} s, main process {own:6.2f} s) {msgs / wall:9.0f} msg/s"
            f"  peak RSS {rss:6.1f} MiB (process tree PSS {tree:6.1f} MiB)"
        )
        walls, cpus = " ".join(f"{r[0]:.2f}" for r in these), " ".join(f"{r[1]:.2f}" for r in these)
        print(f"{'':<16} walls {walls}; CPUs {cpus}")
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
