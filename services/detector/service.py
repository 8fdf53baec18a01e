"""The detector as a service: Kafka ``events`` -> :class:`Detector` core -> calls, streams, alerts.

One consumer group; Kafka spreads the ``events`` partitions over its members.
Because the collector keys every event by Call-ID, all of a call's events are
on one partition, so a member holds a call's whole state (partition-affine).

**Order.** A member reading several partitions gets them interleaved in
whatever order the fetches return. The core must instead see events in the
order the collector emitted them (the order ``callqual analyze`` applies them
in), or calls time out at other moments and records differ. Each event carries
the collector's ``(clock, seq)`` headers, and each partition is a sorted run of
them, so the service k-way merges its partitions: the smallest head is applied
once every other assigned partition has shown a later position (an event, or
one of the collector's per-capture-second watermark markers). With one member
the result equals the embedded pipeline's exactly.

**At-least-once without losing calls.** An event's offset may only be
committed once nothing derived from it is still in memory: a call's events
count as applied only when its record and alerts have been *delivered*. So
the offset stored for a partition is the first offset of its oldest still-open
call (or the first unapplied message), and outputs are flushed before every
store. After a crash the next owner replays from there and rebuilds every
open call; calls already published may be published again, with the same
alert ids (they are deterministic), so downstream dedupes by id.

**Rebalance.** On revocation the member flushes outputs, commits, and drops
all of its state; the partitions it keeps are replayed from their committed
offsets. Simpler than transplanting per-partition state, and exact.

**End of stream.** The collector's ``end`` marker on every partition makes the
core finish (open calls closed as ``end_of_input``, windowed rules flushed),
as at the end of ``callqual analyze``. ``--exit-when-idle`` then ends the
process once nothing has arrived for that long.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from callqual.detector.detector import Detector, Output
from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules.settings import RuleSettings
from callqual.pipeline.stop_signals import stop_on_signals
from callqual.schemas import AnyEvent, CallRecord, SipMessageEvent, StreamRecord, parse_event
from callqual.transport.base import Message, PartitionedSink, PartitionedSource
from callqual.transport.codec import UnserialisableError, encode
from callqual.transport.ordering import header_dict, marker_of, position_of
from callqual.transport.partition_merge import PartitionMerge
from callqual.transport.settings import KafkaSettings

if TYPE_CHECKING:
    from callqual.observability.http_server import MetricsServer
    from callqual.observability.metrics import AlerterMetrics

log = logging.getLogger("callqual.detector.service")

EXIT_OK = 0
EXIT_FATAL = 1
#: Outputs could not be delivered: offsets were not committed, a restart replays
EXIT_UNDELIVERED = 6


class DetectorServiceSettings(BaseSettings):
    """Settings of ``callqual detector``: flags override ``CALLQUAL_DETECTOR_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="CALLQUAL_DETECTOR_", extra="ignore")

    bootstrap_servers: str | None = None
    topic_prefix: str | None = None
    partitions: int | None = Field(default=None, ge=1)
    group_id: str = "callqual-detector"
    #: Exit once no message arrived for this many wall seconds (tests, batch runs); None: never
    exit_when_idle_s: float | None = Field(default=None, gt=0)
    #: With no message for this long, apply whatever waits for the merge (a silent partition)
    idle_flush_s: float = Field(default=1.0, gt=0)
    #: Wall seconds between checkpoints (flush outputs, store offsets)
    checkpoint_interval_s: float = Field(default=1.0, gt=0)
    #: Messages waiting for the merge beyond which they are applied without waiting (counted)
    max_pending: int = Field(default=1_000_000, ge=1)
    stats_interval_s: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"
    #: Serve /metrics and /healthz here (consumer lag, active calls, Kafka producer); None: no server
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    def kafka(self) -> KafkaSettings:
        overrides: dict[str, Any] = {"client_id": "callqual-detector", "group_id": self.group_id}
        if self.bootstrap_servers is not None:
            overrides["bootstrap_servers"] = self.bootstrap_servers
        if self.topic_prefix is not None:
            overrides["topic_prefix"] = self.topic_prefix
        if self.partitions is not None:
            overrides["partitions"] = self.partitions
        return KafkaSettings(**overrides)


def output_key(out: Output) -> str | None:
    if isinstance(out, CallRecord):
        return out.call_id
    if isinstance(out, StreamRecord):
        return out.call_id or f"rtp:{out.src_ip}:{out.src_port}>{out.dst_ip}:{out.dst_port}/{out.ssrc}"
    return out.alert_id


class DetectorService:
    """One group member: the merge of its partitions, the detector core, and the checkpoints."""

    def __init__(self, settings: DetectorServiceSettings, rules: RuleSettings, sink: PartitionedSink) -> None:
        self.settings = settings
        self.rules = rules
        self.kafka = settings.kafka()
        self.topics = self.kafka.topics()
        self._sink = sink
        self._source: PartitionedSource | None = None
        self._stop = threading.Event()
        self.merge: PartitionMerge[AnyEvent] = PartitionMerge(settings.max_pending)
        self.detector = self._new_detector()
        self.counters: dict[str, int] = {
            "messages": 0,
            "applied": 0,
            "markers": 0,
            "undecodable": 0,
            "apply_failed": 0,
            "forced": 0,
            "outputs": 0,
            "checkpoints": 0,
            "rebalances": 0,
            "runs_finished": 0,
        }
        self._fatal: str | None = None
        self._assigned_once = False
        self._exported_errors: dict[str, int] = {}
        self.metrics: AlerterMetrics | None = None
        self.metrics_server: MetricsServer | None = None

    def start_metrics(self, host: str, port: int) -> int:
        """Serve /metrics (and /healthz) for this detector; returns the bound port."""
        from callqual.observability.http_server import start_metrics_server

        self.metrics, self.metrics_server = start_metrics_server(host, port)
        return self.metrics_server.port

    def export_metrics(self) -> None:
        """Active calls, and how far behind the end of its partitions this member is."""
        m = self.metrics
        if m is None:
            return
        m.active_calls.set(len(self.detector.assembler))
        for counter in ("undecodable", "apply_failed"):
            grown = self.counters[counter] - self._exported_errors.get(counter, 0)
            if grown > 0:
                m.parse_errors.labels(reason=f"detector.{counter}").inc(grown)
                self._exported_errors[counter] = self.counters[counter]
        lag = self._source.lag() if self._source is not None else None
        if lag is not None:
            m.consumer_lag.labels(topic=self.topics.events).set(lag)

    def _new_detector(self) -> Detector:
        return Detector(self._on_output, RuleEngine(self.rules))

    # -- outputs ---------------------------------------------------------------

    def _on_output(self, out: Output) -> None:
        topic = (
            self.topics.calls
            if isinstance(out, CallRecord)
            else self.topics.streams
            if isinstance(out, StreamRecord)
            else self.topics.alerts
        )
        self._sink.emit(topic, output_key(out), out)
        self.counters["outputs"] += 1
        if isinstance(out, CallRecord):
            self.merge.release(out.call_id)

    # -- input -----------------------------------------------------------------

    def receive(self, message: Message) -> None:
        partition, offset, value = message.partition, message.offset, message.value
        if partition not in self.merge.partitions:  # revoked since the fetch
            return
        self.counters["messages"] += 1
        headers = header_dict(message.headers)
        position = position_of(headers)
        try:
            marker = marker_of(headers)
        except ValueError as exc:
            self._dead_letter("undecodable", partition, offset, exc, value.decode(errors="replace"))
            self.merge.push(partition, offset, None, None)
            return
        if marker is not None:
            self.counters["markers"] += 1
            self.merge.push_marker(partition, offset, marker, position)
            return
        event: AnyEvent | None
        try:
            event = parse_event(value)
        except ValidationError as exc:  # not JSON, not UTF-8, unknown kind, fields out of the schema
            self._dead_letter("undecodable", partition, offset, exc, value.decode(errors="replace"))
            event = None
        if position is None and event is not None:
            # A producer without the headers: keep partition order, position by capture time.
            ts: Any = getattr(event, "ts", None) or getattr(event, "last_ts", None) or 0.0
            position = (ts, float(offset))
        self.merge.push(partition, offset, position, event)

    def apply_ready(self, force: bool = False) -> int:
        """Apply, in ``(clock, seq)`` order, every pending event no partition can still precede."""
        applied = 0
        forced = self.merge.counters["forced"]
        for ready in self.merge.pop_ready(force):
            self._apply(ready.partition, ready.offset, ready.payload)
            applied += 1
        self.counters["forced"] += self.merge.counters["forced"] - forced
        if self.merge.all_ended():
            self._finish_run()
        return applied

    def _apply(self, partition: int, offset: int, event: AnyEvent) -> None:
        try:
            self.detector.handle(event)
        except (*_APPLY_ERRORS, UnserialisableError) as exc:
            # Valid by the schema, yet the rules (or an output's encoding) raised: a defect to fix,
            # but one event must not stop every call behind it. Logged with its traceback and kept.
            log.exception("event not applied", extra={"partition": partition, "offset": offset})
            self._dead_letter("apply_failed", partition, offset, exc, _wire_text(event))
            return
        self.counters["applied"] += 1
        if isinstance(event, SipMessageEvent):
            # Until its record is out, a call needs its events from its first one on.
            if event.call_id in self.detector.assembler:
                self.merge.hold(event.call_id, partition, offset)
            else:
                self.merge.release(event.call_id)

    def _dead_letter(self, reason: str, partition: int, offset: int, exc: Exception, value: str) -> None:
        """Count ``reason`` and write the message to the dead-letter topic with where it came from."""
        self.counters[reason] += 1
        log.warning(
            "event sent to dead letters",
            extra={"reason": reason, "partition": partition, "offset": offset, "error": str(exc)[:500]},
        )
        letter = DeadLetter(
            reason=f"detector.{reason}",
            topic=self.topics.events,
            partition=partition,
            offset=offset,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            value=value[:65536],
        )
        self._sink.emit(self.topics.deadletter, None, letter)

    def _finish_run(self) -> None:
        """Every assigned partition reached the collector's end marker: end of input, as embedded."""
        self.detector.finish()
        self.counters["runs_finished"] += 1
        self.merge.start_next_run()
        self.detector = self._new_detector()
        log.info("end of capture: all open calls finished", extra=dict(self.counters))

    # -- offsets ---------------------------------------------------------------

    def checkpoint(self, commit: bool = False) -> bool:
        """Deliver outputs, then store the safe offsets; False if outputs could not be delivered."""
        stats = self._sink.stats
        before = stats.failed + stats.dropped
        pending = self._sink.flush(30.0)
        if pending or stats.failed + stats.dropped > 0 or stats.fatal:
            self._fatal = (
                f"outputs not delivered (pending {pending}, failed {stats.failed}, "
                f"dropped {stats.dropped}, before {before}): {stats.last_error}"
            )
            return False
        if self._source is not None:
            self._source.store(self.merge.commit_positions(), commit=commit)
        self.counters["checkpoints"] += 1
        return True

    # -- rebalance -------------------------------------------------------------

    def on_assign(self, partitions: list[int]) -> None:
        self._assigned_once = self._assigned_once or bool(partitions)
        self.merge.assign(partitions)
        log.info("partitions assigned", extra={"partitions": self.merge.partitions})

    def on_revoke(self, partitions: list[int]) -> None:
        self.counters["rebalances"] += 1
        if self.merge.partitions:
            self.checkpoint(commit=True)
        # Drop everything: retained partitions resume from their committed offsets.
        self.merge.clear()
        self.detector = self._new_detector()
        log.info("partitions revoked; state dropped", extra={"partitions": partitions})

    # -- running ---------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Release the sink (what it could not deliver is counted as failed)."""
        self._sink.close(5.0)

    def attach(self, source: PartitionedSource) -> None:
        """Where checkpoints store offsets and lag is read; :meth:`run` attaches its source."""
        self._source = source

    def run(self, source: PartitionedSource) -> int:
        """Consume ``source`` until stopped (or idle, if asked); returns the process exit code."""
        self.attach(source)
        log.info(
            "detector started",
            extra={"group_id": self.settings.group_id, "topic": source.topic},
        )
        s = self.settings
        last_message = time.monotonic()
        next_checkpoint = last_message + s.checkpoint_interval_s
        next_stats = last_message + s.stats_interval_s
        next_metrics = last_message
        code = EXIT_OK
        try:
            while not self._stop.is_set():
                batch = source.poll_batch(1000, 0.2)
                now = time.monotonic()
                if batch:
                    last_message = now
                for message in batch:
                    self.receive(message)
                self.apply_ready()
                idle = now - last_message
                if idle >= s.idle_flush_s:
                    self.apply_ready(force=True)
                if now >= next_checkpoint:
                    next_checkpoint = now + s.checkpoint_interval_s
                    if not self.checkpoint():
                        code = EXIT_UNDELIVERED
                        break
                if now >= next_metrics:
                    next_metrics = now + 1.0
                    self.export_metrics()
                if now >= next_stats:
                    next_stats = now + s.stats_interval_s
                    log.info("detector progress", extra=dict(self.counters))
                if not self._assigned_once:
                    # Idle means "assigned and nothing more to read": a member waiting for the
                    # group to drop a crashed predecessor has not even started.
                    last_message = now
                elif s.exit_when_idle_s is not None and idle >= s.exit_when_idle_s:
                    self.apply_ready(force=True)
                    log.info("idle, exiting", extra={"idle_s": round(idle, 1)})
                    break
            if code == EXIT_OK and not self.checkpoint(commit=True):
                code = EXIT_UNDELIVERED
        except Exception as exc:  # a dead member must say why and exit for its supervisor
            log.exception("detector failed", extra={"error": str(exc)})
            code = EXIT_FATAL
        finally:
            if code == EXIT_UNDELIVERED:
                log.error("stopping without committing", extra={"error": self._fatal})
            self.export_metrics()  # the last figures stay on /metrics until the server stops
            self._source = None
            source.close()
        log.info("detector stopped", extra={**self.counters, "exit_code": code})
        return code


#: What applying a schema-valid event can still raise on odd values (never a transport error).
_APPLY_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError)


def _wire_text(event: AnyEvent) -> str:
    try:
        return encode(event).decode()
    except UnserialisableError:
        return repr(event)


class DeadLetter(BaseModel):
    """An input message the detector could not decode or apply, kept with where it came from."""

    kind: str = "dead_letter"
    #: ``detector.undecodable`` or ``detector.apply_failed``
    reason: str = "detector.undecodable"
    topic: str
    partition: int
    offset: int
    error: str
    value: str


def kafka_service(settings: DetectorServiceSettings, rules: RuleSettings) -> DetectorService:
    """A member publishing to Kafka, its topics created (idempotent)."""
    from callqual.transport.kafka import KafkaEventSink, ensure_service_topics

    kafka = settings.kafka()
    created = ensure_service_topics(kafka, kafka.topics().pipeline())
    if created:
        log.info("created topics", extra={"topics": created})
    return DetectorService(settings, rules, KafkaEventSink(kafka, client_logger=_CLIENT_LOG))


def kafka_source(service: DetectorService) -> PartitionedSource:
    """The group's ``events`` partitions for ``service``; replay starts at the stored offsets only."""
    from callqual.transport.kafka import KafkaPartitionedSource

    return KafkaPartitionedSource(
        service.kafka,
        service.topics.events,
        service.settings.group_id,
        on_assign=service.on_assign,
        on_revoke=service.on_revoke,
        client_logger=_CLIENT_LOG,
    )


#: librdkafka's own log lines go through logging, so stderr stays JSON lines only
_CLIENT_LOG = logging.getLogger("callqual.kafka")


def serve(settings: DetectorServiceSettings, rules: RuleSettings) -> int:
    """``callqual detector``: one member on Kafka, until a signal (or idle, if asked)."""
    service = kafka_service(settings, rules)
    stop_on_signals(service.stop)
    if settings.metrics_port is not None:
        port = service.start_metrics(settings.metrics_host, settings.metrics_port)
        log.info("serving metrics", extra={"host": settings.metrics_host, "port": port})
    try:
        return service.run(kafka_source(service))
    finally:
        service.close()
        if service.metrics_server is not None:
            service.metrics_server.close()
