"""``analyze --split``'s two sides in one process, CPU each: where the source rules run moves the balance.

The child's side is the collector, the handed-over source rules and the batches' encoding; the
parent's is decoding, the detector (with the source rules it keeps) and the JSON report. Each
split point runs in turn, ``--rounds`` times alternating, so the box's load drifts over all
alike; the slower side bounds the wall time on two free cores. Split points: ``none`` (every
source rule in the detector, as before session 6), a rule id (that rule and the later ones stay
in the detector: ``split.KEEP_FROM``), ``all`` (every source rule in the child). Usage::

    PYTHONPATH=$PWD python bench/split_balance.py --capture bench/out/sip.pcap --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.cli.gc_tuning import tune_gc_for_throughput  # noqa: E402
from callqual.collector.capture.pcap_file import open_capture  # noqa: E402
from callqual.collector.collector import Collector  # noqa: E402
from callqual.detector.source_rules import SourceTotals  # noqa: E402
from callqual.pipeline.embedded import EmbeddedPipeline  # noqa: E402
from callqual.pipeline.event_codec import Item, decode_batch, encode_batch  # noqa: E402
from callqual.pipeline.split import BATCH, KEEP_FROM, source_rules_first  # noqa: E402


def child_side(capture: str, pipeline: EmbeddedPipeline, keep_from: str | None) -> tuple[float, list[bytes]]:
    """CPU of the collector (+ handed-over rules) and the encoding; the encoded batches."""
    blobs: list[bytes] = []
    pending: list[Item] = []

    def add(item: Item) -> None:
        pending.append(item)
        if len(pending) >= BATCH:
            blobs.append(encode_batch(pending, 0))
            pending.clear()

    start = time.process_time()
    emit = add if keep_from is None else source_rules_first(pipeline.hand_over_source_rules(keep_from), add)
    collector = Collector(emit, on_tick=add)
    with open_capture(capture) as frames:
        collector.run(frames)
        collector.finish()
    blobs.append(encode_batch(pending, 0))
    return time.process_time() - start, blobs


def parent_side(capture: str, pipeline: EmbeddedPipeline, blobs: list[bytes], handed: bool) -> float:
    start = time.process_time()
    for blob in blobs:
        pipeline.run_events(decode_batch(blob)[1])
    if handed:
        pipeline.adopt_source_rules_end([], SourceTotals())
    pipeline.detector.finish()
    with open(os.devnull, "wb") as out:
        pipeline.write_json_report(out, capture)
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", default=str(ROOT / "bench/out/sip.pcap"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--points", default=f"none,{KEEP_FROM},all", help="split points, comma-separated")
    args = ap.parse_args()
    tune_gc_for_throughput()
    points = args.points.split(",")
    child: dict[str, list[float]] = {p: [] for p in points}
    parent: dict[str, list[float]] = {p: [] for p in points}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for point in points:
            keep_from = None if point == "none" else "" if point == "all" else point
            source = EmbeddedPipeline(compact_outputs=True)  # the child's copy (forked, in analyze)
            cpu, blobs = child_side(args.capture, source, keep_from)
            child[point].append(cpu)
            detector = EmbeddedPipeline(compact_outputs=True)
            if keep_from is not None:
                detector.hand_over_source_rules(keep_from)
            parent[point].append(parent_side(args.capture, detector, blobs, keep_from is not None))
            del blobs, source, detector
    after = os.getloadavg()[0]
    print(f"capture {args.capture}, {args.rounds} rounds alternating, load {load:.2f} -> {after:.2f}")
    for point in points:
        c, p = statistics.median(child[point]), statistics.median(parent[point])
        where = {"none": "all source rules in the detector", "all": "all source rules in the child"}.get(
            point, f"{point} and later in the detector"
        )
        print(f"{where:45s} child {c:5.2f} s  parent {p:5.2f} s  bound {max(c, p):5.2f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
