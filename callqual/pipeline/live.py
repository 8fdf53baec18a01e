"""The embedded pipeline on a live interface: what ``callqual analyze --interface`` runs.

The capture's losses reach the collector in order with the frames, so the
streams that were live while the sniffer (not the network) dropped packets
end up ``unreliable`` and the drops appear in ``summary.dropped``. The
collector reads the capture in RecordBatches (``LiveFrames.record_batches``),
its numpy chunk path, as it reads a pcap file.
"""

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

from callqual.collector.capture.live import CaptureLoss, LiveCapture
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnalysisReport


def loss_notifier(collector: Collector) -> Callable[[CaptureLoss], None]:
    """The ``on_loss`` callback that hands a live source's losses to a collector."""

    def note(loss: CaptureLoss) -> None:
        collector.note_capture_loss(loss.ts, loss.dropped, loss.reason, loss.since)

    return note


class Stoppable(Protocol):
    """A live source that ends when asked to: ``LiveCapture``, ``LiveSplit``."""

    def stop(self) -> None: ...


@contextmanager
def stop_on_sigterm(capture: Stoppable, *also: signal.Signals) -> Iterator[None]:
    """While inside, SIGTERM (and ``also``) stops the capture cleanly (reports still flushed)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        capture.stop()

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, *also)}
    except ValueError:  # not the main thread: the caller owns signal handling
        yield
        return
    try:
        yield
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)


def run_live(pipeline: EmbeddedPipeline, capture: LiveCapture) -> None:
    """Feed an open capture into the pipeline until it stops, then finish (flush) the pipeline."""
    with stop_on_sigterm(capture):
        try:
            pipeline.run(capture.frames(loss_notifier(pipeline.collector)))
        except KeyboardInterrupt:
            capture.stop()
            pipeline.run(capture.frames(loss_notifier(pipeline.collector)))
    pipeline.finish()


def analyze_live(capture: LiveCapture, collector_config: CollectorConfig | None = None) -> AnalysisReport:
    """Capture until ``capture`` stops (its duration, :meth:`LiveCapture.stop`, SIGTERM) and report."""
    pipeline = EmbeddedPipeline(collector_config)
    with capture:
        run_live(pipeline, capture)
    return pipeline.report(f"live:{capture.interface}")
