"""The collector as a service: capture -> :class:`Collector` core -> Kafka ``events`` topic.

This is the adapter around the pure core: it owns the capture source, the
Kafka producer, signals and logs. The core is the same object ``callqual
analyze`` runs, so both transports share one analysis code path.

Wire contract with the detector service (``callqual.detector.service``):

- every collector event goes to the one ``events`` topic, keyed by its Call-ID
  (RTP/RTCP without a call: by their stream key; malformed SIP: by source), so
  a call's SIP and media share a partition and keep their emission order;
- each event carries two headers, ``seq`` (emission order of this collector run)
  and ``clock`` (the collector's capture clock at emission). With several
  partitions, the detector merges them back into emission order with these:
  the order ``callqual analyze`` applies events in, hence the same records;
- ``watermark`` markers go to *every* partition once per capture second, and an
  ``end`` marker when the capture ends (or on SIGTERM). A partition without
  recent traffic would otherwise leave the detector unable to tell whether an
  earlier event might still arrive there.

Back-pressure policy: capture never waits for the broker. librdkafka's queue is
the bounded local buffer (``buffer_max_messages``); while the broker is down
events wait there and are delivered after it returns (the idempotent producer
retries without duplicates). Past the bound an event is dropped and counted,
and an event whose delivery finally fails is counted too, so
``dropped + failed`` is exactly what the topic is missing.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.collector.frame_guard import FrameFailure
from callqual.collector.packet import Frame, RecordBatch
from callqual.pipeline.stop_signals import stop_on_signals
from callqual.schemas import AnyEvent, MalformedSipEvent, RtcpEvent, RtpStreamReport, SipMessageEvent
from callqual.transport.base import MessageRefusedError, PartitionedSink, SinkStats, TransportError
from callqual.transport.codec import UnserialisableError, encode
from callqual.transport.ordering import Marker, event_headers, marker_headers
from callqual.transport.settings import KafkaSettings

if TYPE_CHECKING:
    from callqual.observability.http_server import MetricsServer
    from callqual.observability.metrics import AlerterMetrics

log = logging.getLogger("callqual.collector.service")


EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_UNREADABLE = 3
EXIT_TRUNCATED = 4
#: The run finished but some events never reached the broker (counted in the last log line)
EXIT_LOST = 5


class CollectorServiceSettings(BaseSettings):
    """Settings of ``callqual collector``: flags override ``CALLQUAL_COLLECTOR_*`` variables.

    Connection details (SASL, TLS, client tuning) stay in :class:`KafkaSettings`
    (``CALLQUAL_KAFKA_*``); the three that a user types on a command line
    (servers, prefix, partitions) can be given here too and win.
    """

    model_config = SettingsConfigDict(env_prefix="CALLQUAL_COLLECTOR_", extra="ignore")

    pcap: Path | None = None
    interface: str | None = None
    bootstrap_servers: str | None = None
    topic_prefix: str | None = None
    partitions: int | None = Field(default=None, ge=1)
    #: Bounded local queue: events waiting for the broker; past it events are dropped and counted
    buffer_max_messages: int = Field(default=1_000_000, ge=1)
    #: How long an event may wait for a reachable broker before it is counted as failed
    delivery_timeout_s: float = Field(default=900.0, gt=0)
    #: At shutdown, how long to wait for the queue to drain
    flush_timeout_s: float = Field(default=30.0, ge=0)
    #: Replay a capture file at this multiple of its real time (0: as fast as possible)
    pace: float = Field(default=0.0, ge=0)
    #: Capture seconds between watermark markers
    marker_interval_s: float = Field(default=1.0, gt=0)
    #: Wall seconds between progress log lines
    stats_interval_s: float = Field(default=10.0, gt=0)
    heuristic_rtp: bool = False
    #: Capture seconds between interval reports of live streams, and between reports of a call
    #: whose media flows one way only (0: off); see ``CollectorConfig``
    report_interval_s: float = Field(default=10.0, gt=0)
    quiet_report_interval_s: float = Field(default=2.0, ge=0)
    log_level: str = "INFO"
    #: Serve /metrics and /healthz here (Prometheus: packets captured/dropped, parse errors by
    #: reason, Kafka producer queue and errors); None: no HTTP server
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    def kafka(self) -> KafkaSettings:
        overrides: dict[str, Any] = {
            "buffer_max_messages": self.buffer_max_messages,
            # Events are a few hundred bytes; let the message count be the binding bound.
            "buffer_max_kbytes": min(max(64 * 1024, self.buffer_max_messages * 2), 2**31 - 1),
            "delivery_timeout_ms": int(self.delivery_timeout_s * 1000),
            "client_id": "callqual-collector",
        }
        if self.bootstrap_servers is not None:
            overrides["bootstrap_servers"] = self.bootstrap_servers
        if self.topic_prefix is not None:
            overrides["topic_prefix"] = self.topic_prefix
        if self.partitions is not None:
            overrides["partitions"] = self.partitions
        return KafkaSettings(**overrides)


def event_key(event: AnyEvent) -> str:
    """The partitioning key: the Call-ID whenever the event has one.

    Media without a call (heuristic RTP, SDP never seen) is keyed by its
    stream so its interval and final reports stay in order; malformed SIP by
    its source, which is what the rules that read it aggregate on.
    """
    if isinstance(event, SipMessageEvent):
        return event.call_id
    if isinstance(event, RtpStreamReport):
        if event.call_id:
            return event.call_id
        return f"rtp:{event.src_ip}:{event.src_port}>{event.dst_ip}:{event.dst_port}/{event.ssrc}"
    if isinstance(event, RtcpEvent):
        if event.call_id:
            return event.call_id
        return f"rtcp:{event.src_ip}:{event.src_port}>{event.dst_ip}:{event.dst_port}"
    if isinstance(event, MalformedSipEvent):
        return f"malformed:{event.src_ip}"
    raise TypeError(f"not a collector event: {type(event).__name__}")  # pragma: no cover


@dataclass
class PublishCounts:
    """What the publisher adds to its sink's counters."""

    markers: int = 0
    #: Events that could not be encoded or were refused by the bus, written to dead letters
    dead_lettered: int = 0
    #: Frames the collector's code failed on (counted as internal.* errors), written to dead letters
    frames_dead_lettered: int = 0


class UnpublishedEvent(BaseModel):
    """An event the collector could not publish, as written to the dead-letter topic.

    Compact on purpose: the event may have been refused for its size, so only its
    head travels, with the frame that produced it and why.
    """

    kind: Literal["collector_unpublished"] = "collector_unpublished"
    #: ``collector.unserialisable`` or ``collector.too_large``
    reason: str
    error: str
    event_kind: str
    frame: int | None
    key: str
    excerpt: str


class FailedFrame(BaseModel):
    """A frame the collector's code failed on, as written to the dead-letter topic: enough to replay it."""

    kind: Literal["collector_frame_failed"] = "collector_frame_failed"
    #: ``internal.<ExceptionType>``, as counted in callqual_parse_errors_total{reason}
    reason: str
    error: str
    #: the frame number (for a chunk the collector had to feed again frame by frame: its first)
    frame: int
    ts: float
    linktype: int
    records: int
    #: the captured bytes in hex, at most _FAILED_FRAME_BYTES of them
    data_hex: str
    cut: bool


#: Bytes of a failed frame kept in its dead letter (a jumbo frame fits; the producer's limit is far above)
_FAILED_FRAME_BYTES = 9216


class EventPublisher:
    """Publishes collector events with the ordering headers; never blocks the capture loop."""

    def __init__(self, sink: PartitionedSink, topic: str, run_id: str, deadletter: str | None = None) -> None:
        self.sink = sink
        self.topic = topic
        self.deadletter = deadletter
        #: Events dead-lettered, by reason (exported as parse_errors{reason})
        self.unpublished: Counter[str] = Counter()
        self.partitions = sink.partitions(topic)
        self.run = run_id.encode()
        self.counts = PublishCounts()
        self.seq = 0
        self.clock = float("-inf")

    @property
    def stats(self) -> SinkStats:
        return self.sink.stats

    def publish(self, event: AnyEvent, clock: float | None) -> None:
        if clock is not None and clock > self.clock:
            self.clock = clock
        seq = self.seq
        self.seq = seq + 1
        try:
            value = encode(event)
            self.sink.send(
                self.topic,
                value,
                key=event_key(event),
                headers=event_headers(seq, self.clock, self.run),
            )
        except UnserialisableError as exc:
            self._dead_letter(event, "collector.unserialisable", exc, repr(event))
        except MessageRefusedError as exc:
            self._dead_letter(event, f"collector.{exc.reason}", exc, value[:2000].decode(errors="replace"))

    def _dead_letter(self, event: AnyEvent, reason: str, exc: Exception, excerpt: str) -> None:
        """Count an event that cannot be published and write what identifies it to dead letters."""
        self.unpublished[reason] += 1
        self.counts.dead_lettered += 1
        frame = getattr(event, "frame", None)
        if frame is None:
            frame = getattr(event, "first_frame", None)
        log.warning("event not publishable, dead-lettered", extra={"reason": reason, "frame": frame})
        if self.deadletter is None:
            return
        letter = UnpublishedEvent(
            reason=reason,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            event_kind=event.kind,
            frame=frame,
            key=event_key(event)[:1000],
            excerpt=excerpt[:2000],
        )
        try:
            self.sink.send(self.deadletter, encode(letter))
        except (MessageRefusedError, UnserialisableError):
            self.sink.stats.dropped += 1

    def frame_failed(self, failure: FrameFailure) -> None:
        """Write a frame the collector failed on to dead letters (it is counted in the collector's errors)."""
        self.counts.frames_dead_lettered += 1
        if self.deadletter is None:
            return
        letter = FailedFrame(
            reason=failure.reason,
            error=failure.error,
            frame=failure.frame,
            ts=failure.ts,
            linktype=failure.linktype,
            records=failure.records,
            data_hex=failure.data[:_FAILED_FRAME_BYTES].hex(),
            cut=len(failure.data) > _FAILED_FRAME_BYTES,
        )
        try:
            self.sink.send(self.deadletter, encode(letter))
        except (MessageRefusedError, UnserialisableError):
            self.sink.stats.dropped += 1

    def marker(self, kind: Marker) -> None:
        """A ``watermark`` or ``end`` marker on every partition (not counted as events).

        Markers are progress information, not data: one refused by a full
        queue is simply skipped, the next one supersedes it.
        """
        value = json.dumps({"kind": kind.value, "clock": self.clock, "seq": self.seq}).encode()
        headers = marker_headers(kind, self.seq, self.clock, self.run)
        for partition in range(self.partitions):
            if self.sink.send(self.topic, value, headers=headers, partition=partition, progress=True):
                self.counts.markers += 1
        self.sink.service()

    def service(self) -> None:
        self.sink.service()

    def summary(self) -> dict[str, Any]:
        """The counters for a log line."""
        return {
            **asdict(self.sink.stats),
            **asdict(self.counts),
            "events": self.seq,
            "in_queue": self.sink.in_flight(),
            "lost": self.sink.stats.lost,
        }


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


def open_source(settings: CollectorServiceSettings) -> AbstractContextManager[Any]:
    """The capture file, or the live interface (whose module is imported only when asked for)."""
    if settings.pcap is not None:
        from callqual.collector.capture.pcap_file import open_capture

        return open_capture(settings.pcap)
    if settings.interface is None:
        raise ValueError("a capture source is needed: --pcap FILE or --interface IF")
    try:
        live = importlib.import_module("callqual.collector.capture.live")
    except ImportError as exc:
        raise LiveCaptureUnavailableError(
            "live capture is not available in this installation "
            f"(callqual.collector.capture.live: {exc}); use --pcap FILE"
        ) from exc
    capture: AbstractContextManager[Any] = live.LiveCapture(settings.interface)
    return capture


def frames_of(source: Any, service: CollectorService) -> Iterable[Frame]:
    """A file iterates its frames; a live capture reports its own losses to the collector.

    Packets the sniffer dropped were on the wire: the core marks the streams
    live at the time ``unreliable`` so their "loss" is not blamed on the network.
    """
    frames = getattr(source, "frames", None)
    if frames is None:
        it: Iterable[Frame] = source
        return it
    service.on_stop = source.stop
    collector = service.collector

    def on_loss(loss: Any) -> None:
        collector.note_capture_loss(loss.ts, loss.dropped, loss.reason, loss.since)

    live_frames: Iterable[Frame] = frames(on_loss=on_loss)
    return live_frames


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


class LiveCaptureUnavailableError(RuntimeError):
    pass


def serve(settings: CollectorServiceSettings) -> int:
    """The whole ``callqual collector`` run: connect, capture, finish, flush; the exit code."""
    from callqual.collector.errors import CaptureFormatError
    from callqual.transport.base import TransportError

    service = CollectorService(settings)
    # The capture loop ends; the run still finishes the collector and flushes.
    stop_on_signals(service.stop)
    if settings.metrics_port is not None:
        port = service.start_metrics(settings.metrics_host, settings.metrics_port)
        log.info("serving metrics", extra={"host": settings.metrics_host, "port": port})
    try:
        source = open_source(settings)
    except (FileNotFoundError, IsADirectoryError, PermissionError, CaptureFormatError) as exc:
        log.error("capture not readable", extra={"source": str(settings.pcap), "error": str(exc)})
        return EXIT_UNREADABLE
    except (LiveCaptureUnavailableError, ValueError) as exc:
        log.error(str(exc))
        return EXIT_USAGE
    try:
        opened = source.__enter__()
    except Exception as exc:  # the interface could not be opened (missing, no permission, bad filter)
        log.error("capture not readable", extra={"source": settings.interface, "error": str(exc)})
        return EXIT_UNREADABLE
    try:
        try:
            service.connect()
        except (TransportError, Exception) as exc:  # any failure to reach the broker is fatal here
            log.error("cannot reach kafka", extra={"error": str(exc)})
            return EXIT_FATAL
        code = service.run(frames_of(opened, service))
        if code == EXIT_OK and getattr(opened, "truncated", False):
            code = EXIT_TRUNCATED
    finally:
        source.__exit__(None, None, None)
    return code
