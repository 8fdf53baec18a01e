"""The bounded queue between a live capture's thread and its consumer.

The capture thread must never wait for the consumer (the kernel ring would
overflow behind it), and the consumer must never be handed more memory than
it was allowed: so the queue is bounded twice, in frames and in bytes, and a
raw batch that does not fit is dropped whole and *counted*. The drop goes on
in order with the frames as a ``capture.queue`` :class:`CaptureLoss` (merged
with the loss just before it, so a long overload is one marker, not one per
batch), where the collector marks the streams live at the time unreliable.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from callqual.collector.capture.raw_batches import RawBatch, RawChunk, batch_span

__all__ = ["EOF", "CaptureLoss", "CaptureQueue"]

#: The end of the capture. It stays queued, so that every later consumer ends too.
EOF = object()

#: How long a waiting consumer sleeps between looks (it is also woken by every put)
_WAIT_S = 0.5


@dataclass(frozen=True, slots=True)
class CaptureLoss:
    """Packets the capture lost, reported in order with the frames.

    ``since``..``ts`` is the window in which the loss happened: kernel drops
    are only known at the next ``pcap_stats`` poll, so the window is the
    polling interval; queue drops know the timestamps of the dropped frames.
    """

    ts: float
    since: float
    dropped: int
    reason: str  #: 'capture.kernel', 'capture.interface' or 'capture.queue'


class CaptureQueue:
    """Raw batches, loss markers and the end, first in first out, bounded in frames and bytes.

    Thread-safe: one producer (the capture thread) and one consumer at a time.
    Only raw batches count against the bounds; markers are few (merged) and
    the end is one.
    """

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        self._items: deque[object] = deque()
        self._frames = 0  # frames queued (guarded by _cond)
        self._bytes = 0  # bytes queued (guarded by _cond)
        #: frames dropped because a batch did not fit
        self.dropped = 0
        #: the most frames, and the most bytes, held at once
        self.peak_frames = 0
        self.peak_bytes = 0

    def offer(self, batch: RawBatch, frames: int, size: int) -> bool:
        """Queue ``batch`` if it fits; else count it dropped (and queue the loss). Whether it fit."""
        with self._cond:
            if self._frames + frames <= self.max_frames and self._bytes + size <= self.max_bytes:
                self._items.append(RawChunk(batch, frames, size))
                self._frames += frames
                self._bytes += size
                self.peak_frames = max(self.peak_frames, self._frames)
                self.peak_bytes = max(self.peak_bytes, self._bytes)
                self._cond.notify()
                return True
            self.dropped += frames
            first, last = batch_span(batch)
            tail = self._items[-1] if self._items else None
            if isinstance(tail, CaptureLoss) and tail.reason == "capture.queue":
                # Merge with the previous queue loss: markers must not grow the queue without bound.
                self._items[-1] = CaptureLoss(last, tail.since, tail.dropped + frames, "capture.queue")
            else:
                self._items.append(CaptureLoss(last, first, frames, "capture.queue"))
            self._cond.notify()
            return False

    def put(self, items: Iterable[object]) -> None:
        """Queue loss markers (or the :data:`EOF`) as they are, outside the bounds."""
        with self._cond:
            self._items.extend(items)
            self._cond.notify()

    def end(self) -> None:
        """The capture is over: consumers get what is queued, then :data:`EOF`."""
        self.put((EOF,))

    def take(self, max_frames: int, max_bytes: int) -> object:
        """The next loss marker, the end, or a run of raw batches: the first one waiting, plus the
        ones right behind it while the run stays within ``max_frames`` and ``max_bytes``.

        Waits for the first; never waits for more data to merge: only what is
        already queued is taken. The end stays queued.
        """
        with self._cond:
            items = self._items
            while not items:
                self._cond.wait(_WAIT_S)
            if items[0] is EOF:
                return EOF
            item = items.popleft()
            if not isinstance(item, RawChunk):
                return item
            run = [item]
            frames, size = item.frames, item.size
            while items:
                nxt = items[0]
                if (
                    not isinstance(nxt, RawChunk)
                    or frames + nxt.frames > max_frames
                    or size + nxt.size > max_bytes
                ):
                    break
                items.popleft()
                run.append(nxt)
                frames += nxt.frames
                size += nxt.size
            self._frames -= frames
            self._bytes -= size
            return run
