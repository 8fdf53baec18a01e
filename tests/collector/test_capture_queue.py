"""The live capture's bounded queue: what fits is queued, what does not is counted and marked."""

import struct
import threading

from callqual.collector.capture.capture_queue import EOF, CaptureLoss, CaptureQueue
from callqual.collector.capture.raw_batches import RawChunk


def _batch(first_second: int, frames: int, size: int = 100) -> tuple[bytes, bytes]:
    """A next_batch-shaped raw batch: ``frames`` packets of ``size`` bytes, one a second."""
    meta = b"".join(struct.pack("=IIII", first_second + k, 0, k * size, size) for k in range(frames))
    return b"x" * (frames * size), meta


def test_batches_beyond_either_bound_are_dropped_counted_and_marked_once() -> None:
    queue = CaptureQueue(max_frames=10, max_bytes=10_000)
    assert queue.offer(_batch(100, 6), 6, 600)
    assert not queue.offer(_batch(106, 6), 6, 600)  # 12 frames > 10
    assert not queue.offer(_batch(112, 2), 2, 9_500)  # bytes over the bound
    assert queue.offer(_batch(114, 4), 4, 400)  # fits again
    assert (queue.dropped, queue.peak_frames, queue.peak_bytes) == (8, 10, 1_000)

    first = queue.take(100, 1 << 20)
    assert isinstance(first, list) and [c.frames for c in first] == [6]  # the marker stops the run
    # the two refused batches in a row are one marker spanning both
    assert queue.take(100, 1 << 20) == CaptureLoss(ts=113.0, since=106.0, dropped=8, reason="capture.queue")
    rest = queue.take(100, 1 << 20)
    assert isinstance(rest, list) and [c.frames for c in rest] == [4]


def test_a_run_merges_what_waits_within_the_consumers_bounds() -> None:
    queue = CaptureQueue(max_frames=100, max_bytes=1 << 20)
    for k in range(5):
        queue.offer(_batch(10 * k, 3), 3, 300)
    runs = [queue.take(7, 1 << 20) for _ in range(3)]
    assert [[c.frames for c in run] for run in runs if isinstance(run, list)] == [[3, 3], [3, 3], [3]]
    assert all(isinstance(c, RawChunk) for run in runs if isinstance(run, list) for c in run)
    # taken frames free the bound again
    assert all(queue.offer(_batch(60 + k, 10), 10, 1_000) for k in range(10))
    assert queue.dropped == 0


def test_the_end_stays_queued_for_every_later_consumer_and_wakes_a_waiting_one() -> None:
    queue = CaptureQueue(max_frames=10, max_bytes=10_000)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(queue.take(10, 10_000)))
    waiter.start()
    loss = CaptureLoss(5.0, 4.75, 3, "capture.kernel")
    queue.put([loss])
    waiter.join(timeout=10)
    assert got == [loss]
    queue.end()
    assert queue.take(10, 10_000) is EOF
    assert queue.take(10, 10_000) is EOF
