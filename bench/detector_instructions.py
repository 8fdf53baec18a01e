"""The detector's instructions per SIP message under callgrind: a cost the load of a shared box cannot move.

CPU seconds on two cores shared by six sessions moved by +-20 % between identical runs (issue 14,
session 5); instructions executed do not. The collector's events of the capture are pickled once,
then each checkout runs under ``valgrind --tool=callgrind`` twice: loading them, and loading them
and running the detector as ``bench/sip_stages.py`` does; the difference is the detector. Slow
(about 4 minutes a run on a busy box). Usage::

    python bench/detector_instructions.py --capture bench/out/sip-3000.pcap --a /tmp/base --b .
"""

import argparse
import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.collector.capture.pcap_file import open_capture  # noqa: E402
from callqual.collector.collector import Collector  # noqa: E402
from callqual.schemas import AnyEvent  # noqa: E402

#: Run in the checkout under callgrind: load the events, then (``detect``) run the detector.
_CHILD = """
import pickle, sys
from callqual.cli.gc_tuning import tune_gc_for_throughput
from callqual.pipeline.embedded import EmbeddedPipeline
tune_gc_for_throughput()
with open(sys.argv[1], "rb") as f:
    events = pickle.load(f)
if sys.argv[2] == "detect":
    pipeline = EmbeddedPipeline(compact_outputs=True)
    for event in events:
        pipeline.detector.handle(event)
    pipeline.detector.finish()
"""


def _instructions(root: Path, events: Path, mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={tmp}/out",
            sys.executable,
            "-c",
            _CHILD,
            str(events),
            mode,
        ]
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from callgrind:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=ROOT / "bench/out/sip-3000.pcap")
    ap.add_argument("--a", type=Path, required=True, help="checkout A (its directory)")
    ap.add_argument("--b", type=Path, required=True, help="checkout B")
    args = ap.parse_args()
    collected: list[AnyEvent] = []
    collector = Collector(collected.append)
    with open_capture(args.capture) as frames:
        collector.run(frames)
        collector.finish()
    with tempfile.NamedTemporaryFile(suffix=".pickle") as blob:
        pickle.dump(collected, blob)
        blob.flush()
        for name, root in (("A", args.a.resolve()), ("B", args.b.resolve())):
            loaded = _instructions(root, Path(blob.name), "load")
            detected = _instructions(root, Path(blob.name), "detect")
            per = (detected - loaded) / collector.frames
            print(f"{name} {root}: detector {per:,.0f} instructions/message ({collector.frames} messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
