"""Fuzz bench: at least a million mutated frames of the shared captures through the whole path.

Each drive takes one shared capture, mutates 5 %, 25 % or all of its frames
(callqual.fuzz.mutators, SIP mutators aimed at SIP frames) and runs it through
callqual.fuzz.driver (decode, events over their Kafka encoding, detector,
reports, alerter, notification payloads), per frame or in record batches.
Reports how many frames ran and were mutated, how many drives crashed (must be
0), throughput beside the unmutated captures through the same driver (the
reference), and resident memory at checkpoints and at peak, to show it stays
bounded. Every drive has its own seed: ``--replay SEED`` reruns one. Usage::

    python bench/bench_fuzz.py                      # 1,000,000 mutated frames, seed 1
    python bench/bench_fuzz.py --mutated 50000 --seed 7
    python bench/bench_fuzz.py --replay 1234567890  # one drive, with its traceback
"""

import argparse
import os
import random
import resource
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.fuzz.driver import Capture, drive, drive_plan, load_captures  # noqa: E402
from callqual.fuzz.mutators import Mutation, random_plan  # noqa: E402
from tests.shared_captures import PCAPS  # noqa: E402

RATES = (0.05, 0.25, 1.0)
BATCH_SIZES = (None, 1, 7, 64, 4096)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _one(captures: list[Capture], seed: int) -> tuple[Capture, list[Mutation], int | None]:
    rng = random.Random(seed)
    capture = rng.choice(captures)
    plan = random_plan(rng, len(capture.frames), capture.sip_frames, rng.choice(RATES))
    return capture, plan, rng.choice(BATCH_SIZES)


def _reference(captures: list[Capture]) -> float:
    """Frames/s of the unmutated captures through the same driver (both ways of reading)."""
    start, frames = time.perf_counter(), 0
    for _ in range(3):
        for capture in captures:
            for batch_size in (None, 64):
                frames += drive(capture.frames, batch_size, capture.name).frames
    return frames / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mutated", type=int, default=1_000_000, help="stop after this many mutated frames")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--replay", type=int, help="run the one drive of this seed and show its traceback")
    args = ap.parse_args()
    captures = load_captures(PCAPS)
    if args.replay is not None:
        capture, plan, batch_size = _one(captures, args.replay)
        print(f"{capture.name}: {len(plan)} mutations, batch size {batch_size}")
        result, mutated = drive_plan(capture, plan, batch_size)
        print(f"ok: {mutated} frames mutated, {result}")
        return 0
    print(
        f"{len(captures)} captures, {sum(len(c.frames) for c in captures)} frames; rss {_rss_mib():.0f} MiB"
    )
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores shared: it moves every rate below)")
    reference = _reference(captures)
    print(f"reference: unmutated captures through the driver, {reference:,.0f} frames/s")
    master = random.Random(args.seed)
    drives = frames = mutated = crashes = 0
    kinds: Counter[str] = Counter()
    first_crashes: list[str] = []
    errors: Counter[str] = Counter()
    checkpoints: list[tuple[int, float]] = []
    start = time.perf_counter()
    next_report = 0
    while mutated < args.mutated:
        seed = master.getrandbits(48)
        capture, plan, batch_size = _one(captures, seed)
        kinds.update(m.mutator for m in plan)
        drives += 1
        try:
            result, changed = drive_plan(capture, plan, batch_size)
        except Exception as exc:  # the bench counts crashes: that is its whole output
            crashes += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            if len(first_crashes) < 20:
                first_crashes.append(
                    f"seed {seed} ({capture.name}, batch {batch_size}): {type(exc).__name__}: "
                    f"{str(exc)[:200]} at {where.filename}:{where.lineno}"
                )
            frames += len(capture.frames)
            continue
        frames += result.frames
        mutated += changed
        errors.update(result.errors)
        if mutated >= next_report:
            next_report += max(args.mutated // 10, 1)
            checkpoints.append((mutated, _rss_mib()))
            rate = frames / (time.perf_counter() - start)
            print(
                f"  {mutated:>9,} mutated / {frames:>9,} frames, {drives} drives, {crashes} crashes, "
                f"{rate:,.0f} frames/s, rss {checkpoints[-1][1]:.0f} MiB",
                flush=True,
            )
    wall = time.perf_counter() - start
    rate = frames / wall
    reference = (reference + _reference(captures)) / 2  # before and after: the load drifts
    print(f"load average {os.getloadavg()[0]:.2f}; reference before and after: {reference:,.0f} frames/s")
    print(
        f"\nseed {args.seed}: {drives:,} drives, {frames:,} frames run, {mutated:,} mutated, "
        f"{crashes} crashed, in {wall:.0f} s"
    )
    print(
        f"throughput {rate:,.0f} frames/s ({mutated / wall:,.0f} mutated frames/s), "
        f"{rate / reference:.2f}x the unmutated reference (mutated frames leave the fast path)"
    )
    print("rss at checkpoints (mutated frames: MiB): " + ", ".join(f"{m:,}: {r:.0f}" for m, r in checkpoints))
    print(f"peak rss {_peak_mib():.0f} MiB")
    print("mutations applied: " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())))
    print(
        "errors counted by the collector (top 12): "
        + ", ".join(f"{k} {v:,}" for k, v in errors.most_common(12))
    )
    # The frame guard keeps the collector alive when our own code fails on a frame, and counts
    # it as internal.<Exception>: not a crash, but a defect all the same.
    internal = {k: v for k, v in errors.items() if k.startswith("internal.")}
    print(f"internal errors (our code failed on a frame; must be none): {internal or 'none'}")
    for line in first_crashes:
        print("CRASH", line)
    return 1 if crashes or internal else 0


if __name__ == "__main__":
    raise SystemExit(main())
