"""Benchmark: ``callqual analyze`` against ``tshark -q -z rtp,streams`` on the same capture, in one run.

Reports wall time, packets/s and peak RSS of each, the speed ratio, and whether
the two agree on every stream's packets and lost counts (and delta/jitter
within 1% or 0.01 ms). The load average is printed before and after, since
on a shared machine it moves both timings; the time ``callqual`` spends just
importing its CLI is measured separately because it is part of every run
and is not packet processing. Usage::

    python bench/bench_analyze.py       # makes bench/out/load.pcap (200 calls x 60 s) if missing
    python bench/bench_analyze.py --capture other.pcap
    python bench/bench_analyze.py --capture other.pcap --workers 2   # also --workers 2, same report?

With ``--workers N`` the run is ours with one process, ours with N (``analyze
--workers N``; its CPU is that of all its processes, its peak RSS the largest
one's), then tshark; the two reports must be byte for byte the same.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tshark_reference import rtp_streams  # noqa: E402

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


def _run(cmd: list[str], stdout_path: Path) -> tuple[float, int, float]:
    """Run a command; returns (wall seconds, peak RSS KiB, CPU seconds) of that child alone.

    CPU time is printed next to wall time because on a shared machine it
    moves less: waiting for a CPU another job holds counts in wall time only.
    """
    with stdout_path.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT, env=_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{cmd[0]} failed with exit code {code}")
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(0.01, 0.01 * abs(b))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--capture", type=Path, default=ROOT / "bench/out/load.pcap")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=1, help="also run analyze --workers N (N > 1)")
    args = ap.parse_args()
    cap: Path = args.capture
    if not cap.exists():
        cap.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "callqual",
                "simulate",
                "--scenario",
                "load",
                "--calls",
                str(args.calls),
                "--duration",
                str(args.duration),
                "-o",
                str(cap),
            ],
            check=True,
        )
    frames = int(
        subprocess.run(
            ["capinfos", "-M", "-c", "-r", "-T", str(cap)], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
    )
    out_dir = cap.parent
    _compile_bytecode()
    ours_json = out_dir / "bench-analyze.json"
    ours_wall, ours_rss, ours_cpu = _run(
        [sys.executable, "-m", "callqual", "analyze", str(cap), "--format", "json", "--no-progress"],
        ours_json,
    )
    sharded: tuple[float, int, float] | None = None
    if args.workers > 1:
        sharded_json = out_dir / "bench-analyze-sharded.json"
        sharded = _run(
            [
                sys.executable,
                "-m",
                "callqual",
                "analyze",
                str(cap),
                "--format",
                "json",
                "--no-progress",
                "--workers",
                str(args.workers),
            ],
            sharded_json,
        )
        if sharded_json.read_bytes() != ours_json.read_bytes():
            raise SystemExit(f"--workers {args.workers} gave another report than one process")
    load_before = os.getloadavg()
    import_wall, _, import_cpu = _run(
        [sys.executable, "-c", "import callqual.cli.main"], out_dir / "bench-import.txt"
    )
    theirs_txt = out_dir / "bench-tshark.txt"
    theirs_wall, theirs_rss, theirs_cpu = _run(
        ["tshark", "-q", "-r", str(cap), "-z", "rtp,streams"], theirs_txt
    )

    ours = {
        (s["src_ip"], s["src_port"], s["dst_ip"], s["dst_port"], s["ssrc"]): s
        for s in json.loads(ours_json.read_text())["streams"]
    }
    theirs = rtp_streams(cap)
    mismatches = []
    for key, ref in theirs.items():
        mine = ours.get(key)
        if mine is None:
            mismatches.append(f"missing {key}")
            continue
        if mine["packets"] != ref.packets or mine["lost"] != ref.lost:
            mismatches.append(
                f"{key}: packets/lost {mine['packets']}/{mine['lost']} vs {ref.packets}/{ref.lost}"
            )
        for ours_f, ref_v in (
            ("max_delta_ms", ref.max_delta_ms),
            ("mean_jitter_ms", ref.mean_jitter_ms),
            ("max_jitter_ms", ref.max_jitter_ms),
        ):
            if not _close(mine[ours_f], ref_v):
                mismatches.append(f"{key}: {ours_f} {mine[ours_f]} vs {ref_v}")
    load_after = os.getloadavg()
    print(f"capture            {cap} ({frames} frames, {cap.stat().st_size / 1e6:.1f} MB)")
    print(
        f"machine            {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; Python {sys.version.split()[0]}"
    )
    rows = [("callqual analyze", ours_wall, ours_rss, ours_cpu)]
    if sharded is not None:
        rows.append((f"  --workers {args.workers}", *sharded))
    rows.append(("tshark rtp,streams", theirs_wall, theirs_rss, theirs_cpu))
    for name, wall, rss, cpu in rows:
        print(
            f"{name:<18} {wall:8.2f} s  {frames / wall:10.0f} pkt/s  peak RSS {rss / 1024:7.1f} MiB"
            f"  (CPU {cpu:.2f} s)"
        )
    print(
        f"speed ratio        {theirs_wall / ours_wall:.2f}x (tshark time / callqual time); "
        f"by CPU time {theirs_cpu / ours_cpu:.2f}x"
    )
    if sharded is not None:
        print(
            f"  --workers {args.workers:<6} {theirs_wall / sharded[0]:.2f}x by wall, "
            f"{theirs_cpu / sharded[2]:.2f}x by CPU; the same report, byte for byte"
        )
    print(
        f"of which           {import_wall:.2f} s (CPU {import_cpu:.2f} s) importing the callqual CLI alone "
        f"(ratio without it {theirs_wall / (ours_wall - import_wall):.2f}x)"
    )
    print(f"streams            ours {len(ours)}, tshark {len(theirs)}, mismatches {len(mismatches)}")
    for m in mismatches[:20]:
        print("  " + m)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
