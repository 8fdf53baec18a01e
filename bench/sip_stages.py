"""In-process cost of each stage of SIP analysis: collector, hand-over (``analyze --split``), detector.

The frames are read from the file as ``analyze`` reads them; the collector's events are kept in
memory, then encoded and decoded as ``--split`` sends them (``event_codec``), then given to the
detector. CPU microseconds per message for each stage (best of ``--repeat``, since on a shared box
only the best run is undisturbed), and Python function calls per message, a count that does not
move with the load. GC tuned as ``analyze`` tunes it. Usage::

    python bench/make_sip_capture.py --calls 3000 --spread 30 -o bench/out/sip-3000.pcap
    python bench/sip_stages.py --capture bench/out/sip-3000.pcap [--repeat 3]
"""

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.cli.gc_tuning import tune_gc_for_throughput  # noqa: E402
from callqual.collector.capture.pcap_file import open_capture  # noqa: E402
from callqual.collector.collector import Collector  # noqa: E402
from callqual.pipeline.embedded import EmbeddedPipeline  # noqa: E402
from callqual.pipeline.event_codec import Item, decode_batch, encode_batch  # noqa: E402
from callqual.pipeline.split import BATCH  # noqa: E402
from callqual.schemas import AnyEvent  # noqa: E402


def _collect(capture: Path) -> tuple[list[AnyEvent], int]:
    events: list[AnyEvent] = []
    collector = Collector(events.append)
    with open_capture(capture) as frames:
        collector.run(frames)
        collector.finish()
    return events, collector.frames


def _detect(events: list[AnyEvent]) -> None:
    pipeline = EmbeddedPipeline(compact_outputs=True)
    for event in events:
        pipeline.detector.handle(event)
    pipeline.detector.finish()


def _best_cpu(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def _calls(run: Callable[[], object]) -> int:
    profile = cProfile.Profile()
    profile.runcall(run)
    return int(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=ROOT / "bench/out/sip-3000.pcap")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tune_gc_for_throughput()
    events, frames = _collect(args.capture)
    batches: list[list[Item]] = [list(events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
    blobs = [encode_batch(b) for b in batches]
    load = os.getloadavg()[0]
    collect = lambda: _collect(args.capture)  # noqa: E731
    stages: list[tuple[str, float, int]] = [
        ("collector", _best_cpu(collect, args.repeat), _calls(collect)),
        ("hand-over dump", _best_cpu(lambda: [encode_batch(b) for b in batches], args.repeat), 0),
        ("hand-over load", _best_cpu(lambda: [decode_batch(b) for b in blobs], args.repeat), 0),
        ("detector", _best_cpu(lambda: _detect(events), args.repeat), _calls(lambda: _detect(events))),
    ]
    print(f"capture   {args.capture}: {frames} frames, {len(events)} events; load average {load:.2f}")
    for name, cpu, calls in stages:
        per_call = f"{calls / frames:7.1f} calls/message" if calls else ""
        print(f"{name:<15} {cpu / frames * 1e6:6.1f} us/message CPU  {per_call}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
