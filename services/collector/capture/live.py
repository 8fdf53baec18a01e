"""Live capture from a network interface with libpcap (through pcapy-ng).

This is an adapter (it does I/O and reads the wall clock); it yields the same
:class:`Frame` values as the file reader, so the collector cannot tell a span
port from a pcap file -- except for one thing a file never has: the capture
itself can lose packets. A packet the kernel ring or our own queue dropped was
on the wire; a stream that "lost" it did not suffer network loss, and calling
it bad would blame the network for the sniffer's overload. So every loss is
reported, in order with the frames, as a :class:`CaptureLoss` to an
``on_loss`` callback (the collector's ``note_capture_loss``), which marks the
streams that were live at the time ``unreliable`` and counts the drops.

Design, in the order a packet travels:

* **Kernel ring.** The handle is created unactivated so that the buffer size
  (default 64 MiB, tcpdump's is 2 MiB) can be set before ``activate()``: on
  Linux it sizes the TPACKET_V3 ring, which is what absorbs bursts while
  Python is busy. The read timeout (default 10 ms) is the block-retire timer:
  pcapy-ng does not expose ``pcap_set_immediate_mode``, so a short timeout is
  how latency stays bounded while packets are still delivered in batches.
* **Capture thread.** It waits on the handle's file descriptor with
  ``select`` (which releases the GIL: a blocking libpcap read would not
  return when the link is idle) and pulls up to ``batch`` packets per call
  with ``next_batch`` -- one C-to-Python crossing per batch, not per packet.
  It does nothing per packet: building :class:`Frame` objects is left to the
  consumer, so the thread needs the GIL only briefly and keeps up with the
  ring. Every ``stats_interval_s`` it reads ``pcap_stats`` and turns new
  kernel (``ps_drop``) and interface (``ps_ifdrop``) drops into loss markers.
* **Bounded queue.** Raw batches go to the consumer through a queue bounded
  in bytes (``queue_bytes``, default 256 MiB: the memory it may hold) and in
  frames (``queue_frames``). It absorbs bursts the consumer cannot follow
  for a few seconds; when processing falls further behind, whole batches
  are dropped here and counted (``capture.queue``) rather than letting memory
  grow without bound; the drop is reported like a kernel drop
  (``capture_queue.py``).
* **Consumer.** :meth:`LiveCapture.frames` (run in the processing thread)
  returns a :class:`LiveFrames`: iterated, it cuts the batches into frames;
  its ``record_batches()`` turns them into :class:`RecordBatch` columns
  instead (numpy over ``next_batch``'s metadata, no per-packet Python), the
  input of the collector's chunk path, which ``Collector.run`` picks by
  itself. Raw batches already waiting when the consumer asks are merged
  into one RecordBatch (up to ``merge_frames``/``merge_bytes``), so a
  consumer that fell behind catches up with fewer, larger batches; it never
  waits for more data to merge, so latency stays bounded by the ring
  timeout. Either way ``on_loss`` gets the markers in capture order,
  between the frames (or batches) they fall between.

``stop()`` is safe to call from a signal handler (it only sets an event): the
capture thread then drains what the kernel still holds, takes the final
statistics and ends the frame iterator, so the caller can ``finish()`` and
flush its reports. With a small ``snaplen`` (below 65535) packets are read one
by one with ``dispatch`` instead, because only the per-packet header carries
the wire length of a cut packet; ``next_batch`` reports the captured length.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pcapy

from callqual.collector.capture.capture_queue import EOF, CaptureLoss, CaptureQueue
from callqual.collector.capture.live_filter import (
    DEFAULT_NOISE_PORTS,
    DEFAULT_RTP_PORTS,
    DEFAULT_SIP_PORTS,
    default_bpf,
)
from callqual.collector.capture.raw_batches import META, PACKET_OVERHEAD, RawBatch, record_batch
from callqual.collector.packet import Frame, RecordBatch

__all__ = [
    "DEFAULT_NOISE_PORTS",
    "DEFAULT_RTP_PORTS",
    "DEFAULT_SIP_PORTS",
    "CaptureLoss",
    "CaptureStats",
    "LiveCapture",
    "LiveCaptureError",
    "LiveFrames",
    "default_bpf",
]


class LiveCaptureError(RuntimeError):
    """The interface could not be opened (missing, no permission, bad filter)."""


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """Counters of one live capture (kernel counters are libpcap's ``pcap_stats``)."""

    received: int  #: ps_recv: packets the kernel passed the filter (including those it dropped)
    dropped: int  #: ps_drop: dropped by the kernel because the ring was full
    ifdropped: int  #: ps_ifdrop: dropped by the interface/driver
    queue_dropped: int  #: dropped by us because processing fell behind (bounded queue)
    captured: int  #: frames read from the ring (delivered + queue_dropped)
    queue_peak_frames: int = 0  #: the most frames the queue held at once
    queue_peak_bytes: int = 0  #: the most bytes the queue held at once


class LiveFrames:
    """What :meth:`LiveCapture.frames` returns: the capture's frames, one by one or in batches.

    Iterating gives :class:`Frame` values; :meth:`record_batches` gives the
    same frames as :class:`RecordBatch` columns (what ``Collector.run``
    prefers: its numpy chunk path). Either way the losses go to ``on_loss``
    in order with the frames, and both draw from the one queue, so use one
    view per consumer.
    """

    __slots__ = ("_capture", "_on_loss")

    def __init__(self, capture: LiveCapture, on_loss: Callable[[CaptureLoss], None] | None) -> None:
        self._capture = capture
        self._on_loss = on_loss

    def __iter__(self) -> Iterator[Frame]:
        return self._capture._frame_iter(self._on_loss)

    def record_batches(self) -> Iterator[RecordBatch]:
        """Frames in capture order as RecordBatches, consecutive raw batches merged (see LiveCapture)."""
        return self._capture._batch_iter(self._on_loss)


class LiveCapture:
    """One live capture: open it (or use it as a context manager), consume :meth:`frames`, stop it.

    ``duration`` (seconds) stops the capture by itself; otherwise :meth:`stop`
    (e.g. from a SIGTERM handler) does. ``fanout_group`` joins a Linux
    ``PACKET_FANOUT`` group (flow hash), so several processes can share one
    busy interface with each call's packets staying on one of them.

    The queue between the capture thread and the consumer is bounded twice:
    ``queue_bytes`` (packet data plus 16 bytes of metadata per frame; the
    memory it can hold) and ``queue_frames``. The defaults, 256 MiB and
    2,000,000 frames, hold 1.1 million G.711 RTP frames (214 bytes, 230
    with their metadata): 4 s of a 270,000 packets/s burst during which the
    consumer did nothing at all, on top of the 64 MiB kernel ring; the frame
    bound binds only for frames under ~120 bytes. ``merge_frames`` and
    ``merge_bytes`` bound a RecordBatch of :meth:`LiveFrames.record_batches`:
    raw batches already waiting are merged up to them, so that a consumer
    that fell behind pays its per-batch costs once per ~32,000 frames, not
    per ring read.
    """

    def __init__(
        self,
        interface: str,
        *,
        bpf: str | None = None,
        snaplen: int = 262144,
        promisc: bool = True,
        buffer_bytes: int = 64 << 20,
        timeout_ms: int = 10,
        batch: int = 4096,
        queue_frames: int = 2_000_000,
        queue_bytes: int = 256 << 20,
        merge_frames: int = 32768,
        merge_bytes: int = 8 << 20,
        stats_interval_s: float = 0.25,
        duration: float | None = None,
        fanout_group: int | None = None,
    ) -> None:
        self.interface = interface
        #: None: :func:`default_bpf` for the interface's link type, chosen at open()
        self.bpf = bpf
        self.snaplen = snaplen
        self.promisc = promisc
        self.buffer_bytes = buffer_bytes
        self.timeout_ms = timeout_ms
        self.batch = batch
        self.queue_frames = queue_frames
        self.queue_bytes = queue_bytes
        self.merge_frames = merge_frames
        self.merge_bytes = merge_bytes
        self.stats_interval_s = stats_interval_s
        self.duration = duration
        self.fanout_group = fanout_group
        self.linktype = -1
        self._reader: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: what the capture thread read and the consumer has not taken yet
        self.queue = CaptureQueue(queue_frames, queue_bytes)
        self._captured = 0
        self._number = 0
        self._kernel = (0, 0, 0)
        self._error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def open(self) -> LiveCapture:
        """Open and activate the handle, install the filter and start the capture thread."""
        try:
            reader = pcapy.create(self.interface)
            reader.set_snaplen(self.snaplen)
            reader.set_promisc(self.promisc)
            reader.set_timeout(self.timeout_ms)
            # Before activation, or libpcap ignores it (the ring is allocated by activate()).
            reader.set_buffer_size(self.buffer_bytes)
            reader.activate()
            if self.bpf is None:
                self.bpf = default_bpf(vlan=int(reader.datalink()) == pcapy.DLT_EN10MB)
            if self.bpf:
                reader.setfilter(self.bpf)
            if self.fanout_group is not None:
                reader.set_fanout(self.fanout_group, pcapy.PACKET_FANOUT_HASH)
            reader.setnonblock(True)
        except (pcapy.PcapError, pcapy.BPFError, OSError, ValueError) as exc:
            raise LiveCaptureError(f"{self.interface}: {exc}") from exc
        self._reader = reader
        self.linktype = int(reader.datalink())
        self._thread = threading.Thread(target=self._capture, name=f"capture-{self.interface}", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> LiveCapture:
        return self.open() if self._reader is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def stop(self) -> None:
        """Ask the capture to end: signal-safe; :meth:`frames` ends after the last packets."""
        self._stop.set()

    def close(self) -> None:
        """Stop and wait for the capture thread (frames not yet consumed are discarded)."""
        self.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def stats(self) -> CaptureStats:
        recv, drop, ifdrop = self._kernel
        queue = self.queue
        return CaptureStats(
            recv, drop, ifdrop, queue.dropped, self._captured, queue.peak_frames, queue.peak_bytes
        )

    # -- consumer side -------------------------------------------------------------------------------

    def frames(self, on_loss: Callable[[CaptureLoss], None] | None = None) -> LiveFrames:
        """Frames in capture order until the capture stops; losses go to ``on_loss`` in order.

        Iterate the result for :class:`Frame` values, or call its
        ``record_batches()`` (``Collector.run`` does) for RecordBatches.
        Resumable: a second ``frames()`` after an interrupt continues the
        numbering and the queue where the first one stopped.
        """
        return LiveFrames(self, on_loss)

    def _frame_iter(self, on_loss: Callable[[CaptureLoss], None] | None) -> Iterator[Frame]:
        linktype = self.linktype
        unpack = META.unpack_from
        number = self._number
        while True:
            item = self.queue.take(1, 0)
            if item is EOF:
                break
            if isinstance(item, CaptureLoss):
                if on_loss is not None:
                    on_loss(item)
                continue
            assert isinstance(item, list)
            for chunk in item:
                batch = chunk.batch
                if isinstance(batch, tuple):
                    pkts, meta = batch
                    for off in range(0, len(meta), 16):
                        sec, usec, start, caplen = unpack(meta, off)
                        number += 1
                        yield Frame(number, sec + usec * 1e-6, linktype, pkts[start : start + caplen], caplen)
                else:
                    for ts, data, wire_len in batch:
                        number += 1
                        yield Frame(number, ts, linktype, data, wire_len)
                self._number = number
        self._raise_error()

    def _batch_iter(self, on_loss: Callable[[CaptureLoss], None] | None) -> Iterator[RecordBatch]:
        linktype = self.linktype
        while True:
            item = self.queue.take(self.merge_frames, self.merge_bytes)
            if item is EOF:
                break
            if isinstance(item, CaptureLoss):
                if on_loss is not None:
                    on_loss(item)
                continue
            assert isinstance(item, list)
            number = self._number
            batch = record_batch(item, linktype, number + 1)
            self._number = number + len(batch)
            yield batch
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise LiveCaptureError(f"{self.interface}: {self._error}") from self._error

    # -- capture thread ------------------------------------------------------------------------------

    def _capture(self) -> None:
        reader = self._reader
        fd = reader.getfd()
        wait = max(self.timeout_ms, 1) / 1000.0
        deadline = None if self.duration is None else time.time() + self.duration
        next_stats = 0.0
        last_poll = time.time()
        try:
            while not self._stop.is_set():
                now = time.time()
                if deadline is not None and now >= deadline:
                    break
                if now >= next_stats:
                    next_stats = now + self.stats_interval_s
                    last_poll = self._poll_stats(reader, last_poll)
                ready, _, _ = select.select([fd], [], [], wait)
                if ready:
                    self._read_ready(reader)
            # Drain: a partly filled ring block becomes readable when its retire timer fires.
            end = time.time() + 2 * wait + 0.05
            while time.time() < end:
                select.select([fd], [], [], wait)
                self._read_ready(reader)
            self._read_ready(reader)
            self._poll_stats(reader, last_poll)
        except BaseException as exc:  # reported by frames(), never lost in the thread
            self._error = exc
        finally:
            reader.close()
            self.queue.end()

    def _read_ready(self, reader: Any) -> None:
        """Read everything the ring holds now, batch by batch."""
        while True:
            batch: RawBatch
            if self.snaplen >= 65535:
                pkts, meta = reader.next_batch(self.batch)
                n = len(meta) // 16
                if not n:
                    return
                batch = (pkts, meta)
                size = len(pkts) + len(meta)
            else:
                got: list[tuple[float, bytes, int]] = []

                def one(hdr: Any, data: bytes, got: list[tuple[float, bytes, int]] = got) -> None:
                    sec, usec = hdr.getts()
                    got.append((sec + usec * 1e-6, data, hdr.getlen()))

                reader.dispatch(self.batch, one)
                n = len(got)
                if not n:
                    return
                batch = got
                size = sum(len(data) for _, data, _ in got) + n * PACKET_OVERHEAD
            self._captured += n
            self.queue.offer(batch, n, size)
            if n < self.batch:
                return

    def _poll_stats(self, reader: Any, since: float) -> float:
        """Turn new kernel/interface drops into loss markers; returns the poll time."""
        now = time.time()
        recv, drop, ifdrop = (int(v) for v in reader.stats())
        _, old_drop, old_ifdrop = self._kernel
        self._kernel = (recv, drop, ifdrop)
        losses = [
            CaptureLoss(now, since, n, reason)
            for n, reason in ((drop - old_drop, "capture.kernel"), (ifdrop - old_ifdrop, "capture.interface"))
            if n > 0
        ]
        if losses:
            self.queue.put(losses)
        return now
