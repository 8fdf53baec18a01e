"""Benchmark: the live collector on a veth under tcpreplay, at increasing rates up to --topspeed.

For each rate the load capture is replayed onto one end of a veth pair this
script creates (the other end sits in a fresh network namespace), while the
embedded pipeline captures that interface live with the default settings and
tcpdump captures the same interface into a file as the reference. A rate
passes when the collector lost nothing: no kernel drops, no interface drops,
no drops in its own queue, and it processed as many frames as tcpdump wrote
(tcpdump's own kernel drops are reported next to ours). The highest passing
rate is the answer. ``--reference`` first replays at --topspeed with only
tcpdump capturing: what tcpreplay reaches on this machine without the
collector competing for the CPUs. Each row also has the CPU seconds of this
process (collector and capture thread) and the most the collector's queue
held. Usage (root, or CAP_NET_ADMIN + CAP_NET_RAW)::

    python -m callqual simulate --scenario load --calls 200 --duration 60 -o /tmp/bench/load.pcap
    python bench/bench_live.py --capture /tmp/bench/load.pcap --pps 20000 40000 80000 --topspeed
    python bench/make_sip_capture.py && python bench/bench_live.py --capture bench/out/sip.pcap --pps 20000
    python bench/bench_live.py --capture bench/out/sip.pcap --pps 20000 --both   # one process, then split

The second is issue 14's SIP flood: the signalling-only capture (207,295 messages) at 20,000
messages/s. The collector runs with the cyclic GC tuned as ``callqual analyze`` tunes it.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.cli.gc_tuning import tune_gc_for_throughput  # noqa: E402
from callqual.collector.capture.live import CaptureStats, LiveCapture, default_bpf  # noqa: E402
from callqual.pipeline.embedded import EmbeddedPipeline  # noqa: E402
from callqual.pipeline.live import analyze_live  # noqa: E402
from callqual.pipeline.live_split import LiveSplit  # noqa: E402
from callqual.schemas import AnalysisReport  # noqa: E402

NS, NEAR, FAR = "cqbench", "cqbencha", "cqbenchb"


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=10)


def veth_up() -> None:
    """A veth pair, far end in its own namespace: replayed frames leave NEAR and are captured there."""
    veth_down()
    _ip("netns", "add", NS)
    _ip("link", "add", NEAR, "type", "veth", "peer", "name", FAR)
    _ip("link", "set", FAR, "netns", NS)
    _ip("link", "set", NEAR, "up")
    _ip("-n", NS, "link", "set", FAR, "up")


def veth_down() -> None:
    _ip("link", "del", NEAR, check=False)
    _ip("netns", "del", NS, check=False)


def _tcpdump(ref: Path, bpf: str) -> subprocess.Popen[str]:
    dump = subprocess.Popen(
        ["tcpdump", "-i", NEAR, "-s", "0", "-B", str(64 * 1024), "-w", str(ref), bpf],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert dump.stderr is not None
    dump.stderr.readline()  # "listening on": tcpdump's filter is in place
    return dump


def _counts(replay_out: str, dump_err: str) -> dict[str, object]:
    """What tcpreplay sent and reached, and what tcpdump captured, received and dropped."""
    found = {
        "sent": re.search(r"Successful packets:\s+(\d+)", replay_out),
        "replay_pps": re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", replay_out),
        "tcpdump_captured": re.search(r"(\d+) packets captured", dump_err),
        "tcpdump_received": re.search(r"(\d+) packets received by filter", dump_err),
        "tcpdump_kernel_dropped": re.search(r"(\d+) packets dropped by kernel", dump_err),
    }
    return {
        k: (float(m.group(1)) if k == "replay_pps" else int(m.group(1))) if m else None
        for k, m in found.items()
    }


def reference(capture: Path, out_dir: Path, bpf: str) -> dict[str, object]:
    """tcpreplay --topspeed with only tcpdump capturing: the machine's top speed without us."""
    ref = out_dir / "tcpdump.pcap"
    dump = _tcpdump(ref, bpf)
    start = time.perf_counter()
    replay = subprocess.run(
        ["tcpreplay", "-i", NEAR, "--topspeed", str(capture)], capture_output=True, text=True, check=True
    )
    replayed = time.perf_counter() - start
    time.sleep(1.0)
    dump.terminate()
    _, dump_err = dump.communicate(timeout=60)
    ref.unlink(missing_ok=True)
    counts = _counts(replay.stdout, dump_err)
    return {"rate": "--topspeed (tcpdump only)", **counts, "replay_s": round(replayed, 2)}


class _Live:
    """The live pipeline under test: one process (``analyze_live``) or split (``LiveSplit``)."""

    def __init__(self, split: bool) -> None:
        self.capture = LiveCapture(NEAR)
        self.split: LiveSplit | None = None
        self.result: list[AnalysisReport] = []
        if split:
            self.pipeline = EmbeddedPipeline()
            self.split = LiveSplit(self.pipeline, self.capture).open()
        else:
            self.capture.open()

    def work(self) -> None:
        if self.split is None:
            self.result.append(analyze_live(self.capture))
            return
        self.split.run()
        self.pipeline.finish()
        self.result.append(self.pipeline.report(f"live:{NEAR}"))

    def stop(self) -> None:
        (self.capture if self.split is None else self.split).stop()

    def stats(self) -> CaptureStats:
        if self.split is None:
            return self.capture.stats()
        assert self.split.stats is not None
        return self.split.stats

    def child_cpu_s(self) -> float:
        return 0.0 if self.split is None else self.split.child_cpu_s


def one_rate(capture: Path, rate: list[str], out_dir: Path, split: bool = False) -> dict[str, object]:
    """Replay once at ``rate`` (tcpreplay options); what the live collector and tcpdump saw."""
    runner = _Live(split)
    live = runner.capture
    worker = threading.Thread(target=runner.work, daemon=True)
    worker.start()
    assert live.bpf is not None
    ref = out_dir / "tcpdump.pcap"
    dump = _tcpdump(ref, live.bpf)
    start = time.perf_counter()
    cpu = time.process_time()
    replay = subprocess.run(
        ["tcpreplay", "-i", NEAR, *rate, str(capture)], capture_output=True, text=True, check=True
    )
    replayed = time.perf_counter() - start
    time.sleep(0.5)
    runner.stop()
    worker.join()
    finished = time.perf_counter() - start
    cpu = time.process_time() - cpu + runner.child_cpu_s()
    dump.terminate()
    _, dump_err = dump.communicate(timeout=60)
    report = runner.result[0]
    stats = runner.stats()
    counts = _counts(replay.stdout, dump_err)
    row: dict[str, object] = {
        "rate": " ".join(rate),
        "pipeline": "split (capture+collector | detector)" if split else "one process",
        "sent": counts["sent"],
        "replay_pps": counts["replay_pps"],
        "replay_s": round(replayed, 2),
        "processed_s": round(finished, 2),
        #: from the end of the replay to the last frame analysed (includes the 0.5 s wait before stop)
        "drain_s": round(finished - replayed, 2),
        "cpu_s": round(cpu, 2),
        "frames": report.summary.frames,
        "kernel_dropped": stats.dropped,
        "if_dropped": stats.ifdropped,
        "queue_dropped": stats.queue_dropped,
        "queue_peak_frames": stats.queue_peak_frames,
        "queue_peak_mib": round(stats.queue_peak_bytes / (1 << 20), 1),
        "unreliable_streams": sum(1 for s in report.streams if s.unreliable),
        "streams": len(report.streams),
        "calls": len(report.calls),
        "tcpdump_captured": counts["tcpdump_captured"],
        "tcpdump_received": counts["tcpdump_received"],
        "tcpdump_kernel_dropped": counts["tcpdump_kernel_dropped"],
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    row["lossless"] = (
        stats.dropped == 0
        and stats.ifdropped == 0
        and stats.queue_dropped == 0
        and row["sent"] is not None
        and report.summary.frames >= int(str(row["sent"]))
    )
    ref.unlink(missing_ok=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--capture", type=Path, default=Path("/tmp/bench/load.pcap"))
    parser.add_argument("--pps", type=int, nargs="*", default=[20_000, 40_000, 80_000, 160_000, 320_000])
    parser.add_argument("--topspeed", action="store_true", help="finish with tcpreplay --topspeed")
    parser.add_argument(
        "--reference", action="store_true", help="start with --topspeed and only tcpdump capturing"
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="capture and collector in a child process (pipeline/live_split.py)",
    )
    parser.add_argument(
        "--both", action="store_true", help="each rate one process, then split, alternately (before/after)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "bench-live.json")
    args = parser.parse_args()
    tune_gc_for_throughput()  # as `callqual analyze --interface` runs
    if not args.capture.exists():
        args.capture.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "callqual", "simulate", "--scenario", "load"),
                *("--calls", "200", "--duration", "60", "-o", str(args.capture)),
            ],
            check=True,
        )
    rates = [[f"--pps={pps}"] for pps in args.pps]
    if args.topspeed:
        rates.append(["--topspeed"])
    rows = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    veth_up()
    try:
        if args.reference:
            row = reference(args.capture, args.out.parent, default_bpf())
            print(json.dumps(row), flush=True)
            rows.append(row)
        modes = [False, True] if args.both else [args.split]
        for rate in rates:
            for split in modes:
                row = one_rate(args.capture, rate, args.out.parent, split)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        veth_down()
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), "runs": rows}, indent=2) + "\n")
    best = [r for r in rows if r.get("lossless")]
    print(
        "highest lossless rate:",
        max(best, key=lambda r: float(str(r["replay_pps"] or 0)))["rate"] if best else "none",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
