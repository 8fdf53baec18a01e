"""CPU of ``analyze``'s detector process (the split's parent) on a capture, in-process, A/B.

The collector's output is made once, as the split's child sends it (batches from
``event_codec.encode_batch``, source rules run), and kept in a scratch file; then each
checkout decodes it, runs the detector and writes the JSON report to /dev/null, in a fresh
process, alternately, and the CPU of just that part is printed (process time: on a shared box
wall time measures the queue for the CPU). Both checkouts must read the same batch format.
Usage::

    python bench/parent_cpu.py --capture bench/out/sip.pcap --runs 6 [--against /tmp/base]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Made in this checkout: the child's batches and its source rules' end, pickled.
_MAKE = """
import pickle, sys
from callqual.cli.gc_tuning import tune_gc_for_throughput
from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.event_codec import encode_batch
from callqual.pipeline.split import BATCH, KEEP_FROM, source_rules_first
tune_gc_for_throughput()
rules = EmbeddedPipeline(compact_outputs=True).hand_over_source_rules(KEEP_FROM)
items = []
collector = Collector(source_rules_first(rules, items.append), on_tick=items.append)
with open_capture(sys.argv[1]) as frames:
    collector.run(frames)
    collector.finish()
blobs = [encode_batch(items[i : i + BATCH], 0) for i in range(0, len(items), BATCH)]
with open(sys.argv[2], "wb") as f:
    pickle.dump((blobs, (rules.flush(), rules.totals())), f, protocol=5)
"""

#: Run in each checkout: what the parent does with them, timed.
_RUN = """
import pickle, sys, time
from callqual.cli.gc_tuning import tune_gc_for_throughput
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.event_codec import decode_batch
from callqual.pipeline.split import KEEP_FROM
with open(sys.argv[1], "rb") as f:
    blobs, end = pickle.load(f)
tune_gc_for_throughput()
t = time.process_time()
p = EmbeddedPipeline(compact_outputs=True)
p.hand_over_source_rules(KEEP_FROM)
for blob in blobs:
    p.run_events(decode_batch(blob)[1])
p.adopt_source_rules_end(*end)
p.finish()
with open(sys.argv[2], "wb") as out:
    p.write_json_report(out, "capture")
print(time.process_time() - t)
"""


def _python(checkout: Path, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=checkout, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=ROOT / "bench/out/sip.pcap")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--against", type=Path, help="another checkout, run alternately with this one")
    args = ap.parse_args()
    checkouts = [ROOT] + ([args.against.resolve()] if args.against else [])
    cpu: dict[Path, list[float]] = {c: [] for c in checkouts}
    with tempfile.TemporaryDirectory() as scratch:
        batches = str(Path(scratch) / "batches.pickle")
        _python(ROOT, _MAKE, str(args.capture.resolve()), batches)
        print(f"load average before {os.getloadavg()[0]:.2f}")
        for _ in range(args.runs):
            for checkout in checkouts:
                cpu[checkout].append(float(_python(checkout, _RUN, batches, os.devnull)))
    print(f"load average after  {os.getloadavg()[0]:.2f}")
    for checkout, seconds in cpu.items():
        runs = " ".join(f"{s:.2f}" for s in seconds)
        print(f"{checkout}: median {statistics.median(seconds):.3f} s, min {min(seconds):.3f} s CPU ({runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
