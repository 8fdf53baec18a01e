"""A live capture on two cores: capture and collector in a child process, the detector in this one.

Why: in one process the capture thread, the collector and the detector share
one interpreter, so a 20,000 messages/s SIP flood is analysed at ~4,400 a
second and the capture's bounded queue absorbs the rest (issue 14, "Live SIP
flood"); once it is full, frames are dropped. Split as ``analyze --split``
splits a file (``split.py``: the same batches, codec and pipe), the
detector's share runs on the second core. The capture is opened in the
child, after the fork, since its reader thread would not survive one.

Stopping: :meth:`LiveSplit.stop` (signal-safe) sends the child SIGTERM; the
child stops its capture, drains what it queued, and ends as a file's child
does. The child ignores SIGINT: Ctrl-C reaches the whole process group and
this process decides (``run_live`` stops the capture on it). On the way
out, the child's batches are flushed at each tick too, so a quiet link's
last events are not held back for a full batch.
"""

import contextlib
import os
import signal
from collections import Counter
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from callqual.collector.capture.live import CaptureStats, LiveCapture, LiveCaptureError
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.pipeline.collector_totals import CollectorTotals
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.live import loss_notifier, stop_on_sigterm
from callqual.pipeline.split import (
    BatchSender,
    ChildEnd,
    SplitPipelineError,
    child_cpu_s,
    receive_all,
    start_child,
)

__all__ = ["LiveSplit", "run_live_split"]

#: The child's first message: its capture is open (b"O" + the filter in place) or not (b"X" + why).
_OPENED = b"O"
_NOT_OPENED = b"X"


def _capture_and_collect(capture: LiveCapture, config: CollectorConfig, conn: Connection) -> None:
    """The child: open the capture, run the collector on it until stopped, send everything in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        capture.open()
    except LiveCaptureError as exc:
        conn.send_bytes(_NOT_OPENED + str(exc).encode())
        conn.close()
        return
    signal.signal(signal.SIGTERM, lambda _signum, _frame: capture.stop())
    conn.send_bytes(_OPENED + (capture.bpf or "").encode())
    sender = BatchSender(conn, lambda: 0)

    def on_tick(now: float) -> None:
        sender.add(now)
        sender.flush()

    try:
        with capture:
            collector = Collector(sender.add, config, on_tick=on_tick)
            collector.run(capture.frames(loss_notifier(collector)))
            collector.finish()
        end = ChildEnd(CollectorTotals.of(collector), False, Counter(), child_cpu_s(), capture.stats())
        sender.end(end)
    except BaseException:  # the parent reports it; a child must not die silently
        sender.fail()
    finally:
        conn.close()


class LiveSplit:
    """One live capture analysed by ``pipeline`` with its capture and collector in a child process.

    :meth:`open` (raises :class:`LiveCaptureError` as ``LiveCapture.open``
    does), then :meth:`run` until :meth:`stop` or the capture's duration,
    then report through ``pipeline`` as usual.
    """

    def __init__(self, pipeline: EmbeddedPipeline, capture: LiveCapture) -> None:
        self.pipeline = pipeline
        self.capture = capture
        self._child: BaseProcess | None = None
        self._receive: Connection | None = None
        #: the child's capture statistics and CPU time, once :meth:`run` returned
        self.stats: CaptureStats | None = None
        self.child_cpu_s = 0.0

    def open(self) -> "LiveSplit":
        child, receive = start_child(_capture_and_collect, self.capture, self.pipeline.collector.config)
        try:
            first = receive.recv_bytes()
        except (EOFError, OSError):
            child.join()
            receive.close()
            raise LiveCaptureError(f"{self.capture.interface}: the capture process died") from None
        if first[:1] != _OPENED:
            child.join()
            receive.close()
            raise LiveCaptureError(first[1:].decode(errors="replace"))
        self.capture.bpf = first[1:].decode() or None
        self._child, self._receive = child, receive
        return self

    def stop(self) -> None:
        """End the capture (signal-safe): the child drains what it captured, then :meth:`run` returns."""
        child = self._child
        if child is not None and child.pid is not None:
            with contextlib.suppress(ProcessLookupError):  # already gone: run() reports how
                os.kill(child.pid, signal.SIGTERM)

    def run(self) -> CaptureStats:
        """Analyse until the capture ends; the capture's statistics, as the child's capture counted them."""
        if self._child is None or self._receive is None:
            raise RuntimeError("LiveSplit.run before open")
        try:
            end = receive_all(self.pipeline, self._child, self._receive)
        finally:
            self._child = None  # reaped: its pid may be anyone's now, stop() must not signal it
        if not isinstance(end.detail, CaptureStats):
            raise SplitPipelineError("the capture process ended without its capture statistics")
        self.stats, self.child_cpu_s = end.detail, end.cpu_s
        return end.detail


def run_live_split(split: LiveSplit) -> CaptureStats:
    """``split.run()`` with SIGTERM and Ctrl-C (SIGINT) ending the capture, not this process.

    The child drains what it captured either way, so the report covers it all;
    then the caller finishes and reports through the pipeline.
    """
    with stop_on_sigterm(split, signal.SIGINT):
        return split.run()
