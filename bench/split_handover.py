"""``analyze --split``'s hand-over alone: main's pickling (4f4d35a) against ``event_codec``, alternately.

The collector's output for a capture (events and tick times, as the child
sends them) is cut into the same batches and encoded (the child's cost) and
decoded (the parent's, the busier process) both ways, round after round in
one process, best of 5 per round: CPU microseconds per SIP message. The old
way is main's code at 4f4d35a, kept here as the reference. Usage::

    python bench/split_handover.py --capture bench/out/sip-3000.pcap
"""

import argparse
import io
import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.cli.gc_tuning import tune_gc_for_throughput  # noqa: E402
from callqual.collector.capture.pcap_file import open_capture  # noqa: E402
from callqual.collector.collector import Collector  # noqa: E402
from callqual.pipeline.event_codec import Item, decode_batch, encode_batch  # noqa: E402
from callqual.pipeline.split import BATCH  # noqa: E402
from callqual.schemas.base import WireModel  # noqa: E402

_set = object.__setattr__


def _rebuild(cls: type[WireModel], state: dict[str, Any], fields_set: set[str] | None) -> WireModel:
    """main 4f4d35a: a wire model back from its class and field dict."""
    model = cls.__new__(cls)
    _set(model, "__dict__", state)
    _set(model, "__pydantic_fields_set__", set(state) if fields_set is None else fields_set)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


class _Pickler(pickle.Pickler):
    """main 4f4d35a: wire models pickled as class + field dict."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, WireModel):
            state = obj.__dict__
            fields_set = obj.__pydantic_fields_set__
            return _rebuild, (type(obj), state, None if len(fields_set) == len(state) else fields_set)
        return NotImplemented


def _dumps(obj: object) -> bytes:
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return out.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=ROOT / "bench/out/sip-3000.pcap")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tune_gc_for_throughput()  # as analyze runs
    items: list[Item] = []
    collector = Collector(items.append, on_tick=items.append)
    with open_capture(args.capture) as capture:
        collector.run(capture)
        collector.finish()
    messages = collector.frames
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    old = [_dumps(b) for b in batches]
    new = [encode_batch(b) for b in batches]
    assert [pickle.loads(x) for x in old] == [decode_batch(x)[1] for x in new] == batches

    def best(run: Callable[[], object]) -> float:
        fastest = float("inf")
        for _ in range(5):
            start = time.process_time()
            run()
            fastest = min(fastest, time.process_time() - start)
        return fastest / messages * 1e6

    stages: dict[str, Callable[[], object]] = {
        "pickle dump (main)": lambda: [_dumps(b) for b in batches],
        "codec dump": lambda: [encode_batch(b) for b in batches],
        "pickle load (main)": lambda: [pickle.loads(x) for x in old],
        "codec load": lambda: [decode_batch(x) for x in new],
    }
    load = os.getloadavg()[0]
    results: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(args.rounds):
        for name, run in stages.items():
            results[name].append(best(run))
    print(f"capture {args.capture}: {messages} messages, {len(items)} items, batches of {BATCH}")
    print(f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    for name, values in results.items():
        rounds = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:<20} {min(values):5.2f} us/message CPU (rounds: {rounds})")
    sizes = sum(map(len, old)) / messages, sum(map(len, new)) / messages
    print(f"bytes/message: pickle {sizes[0]:.0f}, codec {sizes[1]:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
