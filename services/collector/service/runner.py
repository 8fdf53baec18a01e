"""One capture through the collector core, published: stop, pacing, markers, progress and metrics.

:class:`CollectorService` owns the core (the same ``Collector`` that ``callqual
analyze`` runs) and the :class:`EventPublisher` it emits into; between
frames or chunks it services the producer, sends watermarks once per
``marker_interval_s`` of capture time, logs progress and exports metrics.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.collector.frame_guard import FrameFailure
from callqual.collector.packet import Frame, RecordBatch
from callqual.collector.service.publisher import EventPublisher
from callqual.collector.service.settings import EXIT_FATAL, EXIT_LOST, EXIT_OK, CollectorServiceSettings
from callqual.schemas import AnyEvent
from callqual.transport.base import PartitionedSink, TransportError
from callqual.transport.ordering import Marker

if TYPE_CHECKING:
    from callqual.observability.http_server import MetricsServer
    from callqual.observability.metrics import AlerterMetrics

log = logging.getLogger("callqual.collector.service")


class CollectorService:
    """Runs one capture through the collector core and publishes what it emits."""

    def __init__(self, settings: CollectorServiceSettings, sink: PartitionedSink | None = None) -> None:
        self.settings = settings
        self.kafka = settings.kafka()
        self.topics = self.kafka.topics()
        self.run_id = uuid.uuid4().hex[:12]
        self._stop = threading.Event()
        self.on_stop: Callable[[], None] | None = None
        self._sink = sink
        self.publisher: EventPublisher | None = None
        config = CollectorConfig(
            heuristic_rtp=settings.heuristic_rtp,
            report_interval_s=settings.report_interval_s,
            quiet_report_interval_s=settings.quiet_report_interval_s,
        )
        # A frame our code fails on is counted and dead-lettered; a bus that is gone still ends the run.
        self.collector = Collector(self._emit, config, on_failure=self._frame_failed, fatal=(TransportError,))
        self._next_marker = float("-inf")
        self._next_stats = 0.0
        self.metrics: AlerterMetrics | None = None
        self.metrics_server: MetricsServer | None = None
        self._kafka_errors_seen = 0

    def start_metrics(self, host: str, port: int) -> int:
        """Serve /metrics (and /healthz) for this collector; returns the bound port."""
        from callqual.observability.http_server import start_metrics_server

        self.metrics, self.metrics_server = start_metrics_server(host, port)
        return self.metrics_server.port

    def export_metrics(self) -> None:
        """Bring the metrics up to the collector's and the producer's running totals."""
        if self.metrics is None:
            return
        from callqual.observability.metrics import export_counters

        c = self.collector
        pub = self.publisher
        export_counters(
            self.metrics,
            f"collector:{self.run_id}",
            frames=c.frames,
            errors=c.all_errors() + (pub.unpublished if pub is not None else Counter()),
            skipped=c.all_skipped(),
            dropped=c.all_dropped(),
        )
        if pub is not None:
            self.metrics.kafka_queue_depth.labels(service="collector").set(pub.sink.in_flight())
            errors = pub.stats.failed + pub.stats.dropped
            if errors > self._kafka_errors_seen:
                self.metrics.kafka_produce_errors.labels(service="collector").inc(
                    errors - self._kafka_errors_seen
                )
                self._kafka_errors_seen = errors

    # -- wiring ----------------------------------------------------------------

    def connect(self) -> None:
        """Create the topics (idempotent) and the producer; fails fast on a bad configuration."""
        if self._sink is None:
            from callqual.transport.kafka import KafkaEventSink, ensure_service_topics

            created = ensure_service_topics(self.kafka, self.topics.pipeline())
            if created:
                log.info("created topics", extra={"topics": created})
            self._sink = KafkaEventSink(self.kafka, client_logger=logging.getLogger("callqual.kafka"))
        self.publisher = EventPublisher(self._sink, self.topics.events, self.run_id, self.topics.deadletter)
        log.info(
            "collector connected",
            extra={
                "bootstrap_servers": self.kafka.bootstrap_servers,
                "topic": self.topics.events,
                "partitions": self.publisher.partitions,
                "run": self.run_id,
                "buffer_max_messages": self.settings.buffer_max_messages,
            },
        )

    def stop(self) -> None:
        """Ask the capture loop to end (signal handlers call this); the run then finishes cleanly."""
        self._stop.set()
        if self.on_stop is not None:
            # A live capture blocks waiting for packets: it must be told too.
            self.on_stop()

    def _frame_failed(self, failure: FrameFailure) -> None:
        if self.publisher is not None:
            self.publisher.frame_failed(failure)

    def _emit(self, event: AnyEvent) -> None:
        assert self.publisher is not None
        self.publisher.publish(event, self.collector.last_ts)

    # -- running ---------------------------------------------------------------

    def _frames(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """The capture, interrupted by :meth:`stop`, paced if asked, with periodic housekeeping."""
        pub = self.publisher
        assert pub is not None
        stop = self._stop
        pace = self.settings.pace
        start_wall = time.monotonic()
        start_ts: float | None = None
        for n, frame in enumerate(frames, 1):
            if start_ts is None:
                start_ts = frame.ts
                start_wall = time.monotonic()
                # Wall time <-> capture time of the run: what latency measurements anchor on.
                log.info("first frame", extra={"capture_ts": frame.ts, "frame": frame.number})
            if pace:
                due = start_wall + (frame.ts - start_ts) / pace
                while (delay := due - time.monotonic()) > 0 and not stop.is_set():
                    pub.service()
                    time.sleep(min(delay, 0.05))
            if stop.is_set():
                return
            yield frame
            if n & 0x3FF == 0 or pace:
                self._housekeeping()
        self._housekeeping()

    def _batches(self, batches: Iterator[RecordBatch]) -> Iterator[RecordBatch]:
        """:meth:`_frames` for a source read in RecordBatches: the stop check and housekeeping per batch."""
        stop = self._stop
        first = True
        for batch in batches:
            if stop.is_set():
                return
            if first and len(batch):
                first = False
                log.info("first frame", extra={"capture_ts": float(batch.ts[0]), "frame": batch.first_number})
            yield batch
            self._housekeeping()
        self._housekeeping()

    def _housekeeping(self) -> None:
        pub = self.publisher
        assert pub is not None
        pub.service()
        last = self.collector.last_ts
        if last is not None and last >= self._next_marker:
            pub.clock = max(pub.clock, last)
            pub.marker(Marker.WATERMARK)
            self._next_marker = last + self.settings.marker_interval_s
        now = time.monotonic()
        if now >= self._next_stats:
            if self._next_stats:
                self._log_stats("collector progress")
            self._next_stats = now + self.settings.stats_interval_s
        self.export_metrics()

    def _log_stats(self, msg: str, level: int = logging.INFO) -> None:
        pub = self.publisher
        c = self.collector
        extra: dict[str, Any] = {"frames": c.frames, "bytes": c.bytes, "run": self.run_id}
        extra["quiet_probe_reports"] = c.counters["rtp.quiet_probe_reports"]
        if pub is not None:
            extra.update(pub.summary())
        log.log(level, msg, extra=extra)

    def run(self, frames: Iterable[Frame]) -> int:
        """Publish a whole capture; returns the process exit code."""
        pub = self.publisher
        assert pub is not None
        try:
            self.collector.run(_ServiceInput(self, frames))
        finally:
            # Even when interrupted: final stream reports, the end marker, then drain.
            self.collector.finish()
            pub.marker(Marker.END)
            # What is still undelivered then is purged and counted as failed: lost.
            pub.sink.close(self.settings.flush_timeout_s)
        self.export_metrics()
        stopped = "interrupted" if self._stop.is_set() else "finished"
        lost = pub.stats.lost
        self._log_stats(f"collector {stopped}", logging.WARNING if lost or pub.stats.fatal else logging.INFO)
        if pub.stats.fatal:
            return EXIT_FATAL
        if lost:
            return EXIT_LOST
        return EXIT_OK


class _ServiceInput:
    """The capture as the service hands it to the collector: stoppable, with housekeeping.

    Iterated, it gives the frames one by one (:meth:`CollectorService._frames`:
    paced if asked). When the source offers ``record_batches()`` (a classic
    pcap file, a live capture) and no pacing is asked, ``Collector.run``
    takes its numpy chunk path through :meth:`record_batches` instead, with
    the same stop check and housekeeping per batch. Pacing stays per frame:
    it replays a file at capture speed, where throughput does not matter.
    """

    __slots__ = ("_service", "_source")

    def __init__(self, service: CollectorService, source: Iterable[Frame]) -> None:
        self._service = service
        self._source = source

    def __iter__(self) -> Iterator[Frame]:
        return self._service._frames(self._source)

    def record_batches(self) -> Iterator[RecordBatch] | None:
        if self._service.settings.pace:
            return None
        bulk = getattr(self._source, "record_batches", None)
        batches: Iterator[RecordBatch] | None = bulk() if callable(bulk) else None
        return None if batches is None else self._service._batches(batches)
