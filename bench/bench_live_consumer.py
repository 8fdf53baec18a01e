"""Benchmark: the live capture's consumer alone, without a wire, at several RecordBatch sizes.

The load capture is cut into raw batches shaped exactly as pcapy-ng's
``next_batch`` returns them (packet bytes, 16-byte native sec/usec/offset/caplen
records), queued into a LiveCapture that is never opened, and the embedded
pipeline consumes them through ``frames().record_batches()`` as it does live.
Capture times are compressed ``--speedup`` times, as a fast replay compresses
them. What a run shows: the consumer's throughput on a free core, and how it
depends on the batch size (on a wire, a batch is what accumulated while the
previous one was processed: one ring block, ~10 ms of traffic, when the
consumer keeps up; up to ``merge_frames`` when it fell behind). ``--per-frame``
iterates the frames instead, the collector's per-frame loop (what live capture
ran before it offered RecordBatches). Uses the capture's private queue; run
from the repository root::

    python bench/bench_live_consumer.py --capture /tmp/bench/load.pcap --batch 256 1024 4096 32768
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callqual.collector.capture import live as live_module  # noqa: E402
from callqual.collector.capture.pcap_file import open_capture  # noqa: E402
from callqual.pipeline.embedded import EmbeddedPipeline  # noqa: E402
from callqual.pipeline.live import loss_notifier  # noqa: E402


def raw_batches(capture: Path, size: int, speedup: float) -> list[tuple[bytes, bytes]]:
    """The capture as next_batch results of ``size`` packets, capture times compressed."""
    out: list[tuple[bytes, bytes]] = []
    t0: float | None = None
    with open_capture(capture) as f:
        batches = f.record_batches()
        assert batches is not None, "a classic pcap file"
        for b in batches:
            if t0 is None:
                t0 = float(b.ts[0])
            ts = t0 + (b.ts - t0) / speedup
            sec = np.floor(ts)
            usec = np.minimum(np.round((ts - sec) * 1e6), 999_999)
            for lo in range(0, len(b), size):
                hi = min(len(b), lo + size)
                parts = [
                    b.buf[s : s + c]
                    for s, c in zip(b.start[lo:hi].tolist(), b.caplen[lo:hi].tolist(), strict=True)
                ]
                lens = np.array([len(p) for p in parts], np.uint32)
                meta = np.stack([sec[lo:hi], usec[lo:hi], np.cumsum(lens) - lens, lens], axis=1)
                out.append((b"".join(parts), meta.astype(np.uint32).tobytes()))
    return out


def one(capture: Path, size: int, speedup: float, per_frame: bool) -> dict[str, object]:
    raw = raw_batches(capture, size, speedup)
    live = live_module.LiveCapture("bench0", merge_frames=size, merge_bytes=1 << 30)
    live.linktype = 1
    for pkts, meta in raw:
        live.queue.offer((pkts, meta), len(meta) // 16, 0)  # no wire: fill the queue directly
    live.queue.end()  # what the capture thread does at its end
    pipeline = EmbeddedPipeline()
    start, cpu = time.perf_counter(), time.process_time()
    frames = live.frames(loss_notifier(pipeline.collector))
    pipeline.run(iter(frames) if per_frame else frames)
    pipeline.finish()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    report = pipeline.report("bench")
    frames = report.summary.frames
    return {
        "batch": size,
        "consumer": "frames" if per_frame else "record_batches",
        "batches": len(raw),
        "frames": frames,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "pkt_per_s": round(frames / wall),
        "streams": len(report.streams),
        "calls": len(report.calls),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--capture", type=Path, default=Path("/tmp/bench/load.pcap"))
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 1024, 4096, 32768])
    parser.add_argument("--speedup", type=float, default=6.0, help="capture time compression (a fast replay)")
    parser.add_argument("--per-frame", action="store_true", help="iterate frames, not RecordBatches")
    args = parser.parse_args()
    for size in args.batch:
        print(one(args.capture, size, args.speedup, args.per_frame), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
