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
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from callqual.detector.detector import Detector, Output
from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules.settings import RuleSettings
from callqual.pipeline.stop_signals import stop_on_signals
from callqual.schemas import (
    AnyEvent,
    CallRecord,
    CallStateUpdate,
    RtpStreamReport,
    SipMessageEvent,
    StreamRecord,
    parse_event,
)
from callqual.transport.codec import UnserialisableError, encode
from callqual.transport.settings import KafkaSettings

if TYPE_CHECKING:
    from callqual.alerter.metrics import AlerterMetrics
    from callqual.alerter.service import MetricsServer

log = logging.getLogger("callqual.detector.service")

H_SEQ = "seq"
H_CLOCK = "clock"
H_MARKER = "callqual-marker"
#: The collector's marker kinds (see callqual.collector.service)
_MARKERS = (b"watermark", b"end")

EXIT_OK = 0
EXIT_FATAL = 1
#: Outputs could not be delivered: offsets were not committed, a restart replays
EXIT_UNDELIVERED = 6

Position = tuple[float, float]
_END: Position = (float("inf"), float("inf"))


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


@dataclass(slots=True)
class _Item:
    offset: int
    position: Position
    event: AnyEvent | None  # None: a marker
    marker: str | None = None


@dataclass
class _Partition:
    """What the service holds of one assigned partition."""

    pending: deque[_Item] = field(default_factory=deque)
    #: Every later message of this partition is positioned after this
    progress: Position | None = None
    #: Offset of the last message taken off ``pending`` (applied, or a marker)
    last_done: int | None = None
    #: Call-ID -> offset of the event that opened the call, for calls still in memory
    open_calls: dict[str, int] = field(default_factory=dict)
    ended: bool = False
    pid: int = 0


def _headers(raw: list[tuple[str, bytes | None]] | None) -> dict[str, bytes]:
    # Kafka headers may be repeated (the last wins, as in dict()) or have no value at all.
    return {k: v for k, v in raw if v is not None} if raw else {}


def _position(h: dict[str, bytes]) -> Position | None:
    """The collector's ``(clock, seq)``; None when absent or not finite numbers (a foreign producer)."""
    try:
        position = (float(h[H_CLOCK]), float(h[H_SEQ]))
    except (KeyError, ValueError):
        return None
    return position if all(map(math.isfinite, position)) else None


def output_key(out: Output) -> str | None:
    if isinstance(out, CallRecord):
        return out.call_id
    if isinstance(out, StreamRecord):
        return out.call_id or f"rtp:{out.src_ip}:{out.src_port}>{out.dst_ip}:{out.dst_port}/{out.ssrc}"
    return out.alert_id


class DetectorService:
    def __init__(self, settings: DetectorServiceSettings) -> None:
        self.settings = settings
        self.kafka = settings.kafka()
        self.topics = self.kafka.topics()
        self._stop = threading.Event()
        self.parts: dict[int, _Partition] = {}
        #: Call-ID -> partition, for the calls of ``open_calls``
        self._call_partition: dict[str, int] = {}
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
        self._consumer: Any = None
        self._sink: Any = None
        self._fatal: str | None = None
        self._dirty = False
        self._assigned_once = False
        #: the collector clock of the last stream report applied (see ``_take``)
        self._report_clock = float("-inf")
        self._exported_errors: dict[str, int] = {}
        self.metrics: AlerterMetrics | None = None
        self.metrics_server: MetricsServer | None = None

    def start_metrics(self, host: str, port: int) -> int:
        """Serve /metrics (and /healthz) for this detector; returns the bound port."""
        from callqual.alerter.service import start_metrics_server

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
        consumer = self._consumer
        if consumer is None:
            return
        behind = 0
        try:
            for tp in consumer.assignment():
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                (pos,) = consumer.position([tp])
                if high >= 0 and pos.offset >= 0:
                    behind += max(0, high - pos.offset)
        except Exception as exc:  # lag is best-effort: a rebalance can pull partitions away mid-way
            log.debug("consumer lag unavailable", extra={"error": str(exc)})
            return
        m.consumer_lag.labels(topic=self.topics.events).set(behind)

    def _new_detector(self) -> Detector:
        return Detector(self._on_output, RuleEngine(RuleSettings()), on_call_state=self._on_call_state)

    def _on_call_state(self, update: CallStateUpdate) -> None:
        self._sink.emit(self.topics.call_state, update.call_id, update)
        self.counters["outputs"] += 1

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
        self._dirty = True
        if isinstance(out, CallRecord):
            p = self._call_partition.pop(out.call_id, None)
            if p is not None and p in self.parts:
                self.parts[p].open_calls.pop(out.call_id, None)

    # -- input -----------------------------------------------------------------

    def receive(self, partition: int, offset: int, headers: dict[str, bytes], value: bytes) -> None:
        part = self.parts.get(partition)
        if part is None:  # a message from a partition revoked since the fetch
            return
        self.counters["messages"] += 1
        position = _position(headers)
        marker = headers.get(H_MARKER)
        if marker is not None and marker not in _MARKERS:
            exc = ValueError(f"unknown marker {marker[:40]!r}")
            self._dead_letter("undecodable", partition, offset, exc, value.decode(errors="replace"))
            part.pending.append(_Item(offset, part.progress or (float("-inf"), -1.0), None))
            return
        if marker is not None:
            self.counters["markers"] += 1
            pos = _END if marker == b"end" else position
            if pos is not None:
                # All later events have seq >= the marker's: a strict lower bound is seq - 1.
                bound = pos if pos == _END else (pos[0], pos[1] - 1)
                part.progress = bound if part.progress is None else max(part.progress, bound)
            kind = marker.decode(errors="replace")
            part.pending.append(_Item(offset, part.progress or (float("-inf"), -1.0), None, kind))
            return
        try:
            event = parse_event(value)
        except ValidationError as exc:  # not JSON, not UTF-8, unknown kind, fields out of the schema
            self._dead_letter("undecodable", partition, offset, exc, value.decode(errors="replace"))
            event = None
        if position is None:
            # A producer without the headers: keep partition order, position by capture time.
            ts: Any = getattr(event, "ts", None) or getattr(event, "last_ts", None) or 0.0
            position = (ts, float(offset))
        if part.progress is None or position > part.progress:
            part.progress = position
        part.pending.append(_Item(offset, position, event))

    def apply_ready(self, force: bool = False) -> int:
        """Apply, in ``(clock, seq)`` order, every pending event no partition can still precede."""
        parts = self.parts
        applied = 0
        while True:
            best: _Partition | None = None
            best_pos: Position | None = None
            bound: Position = _END
            for part in parts.values():
                while part.pending and part.pending[0].event is None:
                    self._take(part)
                if part.pending:
                    head = part.pending[0].position
                    if best_pos is None or head < best_pos:
                        if best is not None and best_pos is not None:
                            bound = min(bound, best_pos)
                        best, best_pos = part, head
                    else:
                        bound = min(bound, head)
                elif part.progress is not None:
                    bound = min(bound, part.progress)
                else:
                    bound = min(bound, (float("-inf"), -1.0))
            if best is None or best_pos is None:
                break
            if best_pos > bound and not force:
                if sum(len(p.pending) for p in parts.values()) <= self.settings.max_pending:
                    break
                self.counters["forced"] += 1
            self._take(best)
            applied += 1
        self._judge_live_calls()
        if all(p.ended for p in parts.values()) and parts and not any(p.pending for p in parts.values()):
            self._finish_run()
        return applied

    def _judge_live_calls(self) -> None:
        """Judge the calls still up once every partition is past the last stream report's tick.

        One collector tick's reports share its clock: when no partition can still deliver an
        event at that clock, the batch is complete (watermarks move quiet partitions on).
        """
        parts = self.parts.values()
        if not parts or self._report_clock == float("-inf"):
            return
        for part in parts:
            head = part.pending[0].position if part.pending else part.progress
            if head is None or head[0] <= self._report_clock:
                return
        self.detector.judge_live()

    def _take(self, part: _Partition) -> None:
        item = part.pending.popleft()
        part.last_done = item.offset
        if item.event is None:
            if item.marker == "end":
                part.ended = True
            return
        event = item.event
        p = part.pid
        if isinstance(event, RtpStreamReport):
            self._report_clock = item.position[0]
        try:
            self.detector.handle(event)
        except (*_APPLY_ERRORS, UnserialisableError) as exc:
            # Valid by the schema, yet the rules (or an output's encoding) raised: a defect to fix,
            # but one event must not stop every call behind it. Logged with its traceback and kept.
            log.exception("event not applied", extra={"partition": p, "offset": item.offset})
            self._dead_letter("apply_failed", p, item.offset, exc, _wire_text(event))
            return
        self.counters["applied"] += 1
        if isinstance(event, SipMessageEvent):
            cid = event.call_id
            if _is_open(self.detector, cid):
                if cid not in part.open_calls:
                    part.open_calls[cid] = item.offset
                    self._call_partition[cid] = p
            elif cid in part.open_calls:
                part.open_calls.pop(cid, None)
                self._call_partition.pop(cid, None)

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
        for part in self.parts.values():
            part.open_calls.clear()
            part.ended = False
            part.progress = None
        self._call_partition.clear()
        self.detector = self._new_detector()
        log.info("end of capture: all open calls finished", extra=dict(self.counters))

    # -- offsets ---------------------------------------------------------------

    def commit_positions(self) -> dict[int, int]:
        """Per partition, the offset a restart must resume from (nothing before it is needed)."""
        out: dict[int, int] = {}
        for p, part in self.parts.items():
            if part.last_done is None:
                continue
            candidates = [part.last_done + 1]
            if part.pending:
                candidates.append(part.pending[0].offset)
            if part.open_calls:
                candidates.append(min(part.open_calls.values()))
            out[p] = min(candidates)
        return out

    def checkpoint(self, commit: bool = False) -> bool:
        """Deliver outputs, then store the safe offsets; False if outputs could not be delivered."""
        from confluent_kafka import KafkaException, TopicPartition

        sink = self._sink
        before = sink.stats.failed + sink.stats.dropped
        pending = sink.flush(30.0)
        if pending or sink.stats.failed + sink.stats.dropped > 0 or sink.stats.fatal:
            self._fatal = (
                f"outputs not delivered (pending {pending}, failed {sink.stats.failed}, "
                f"dropped {sink.stats.dropped}, before {before}): {sink.stats.last_error}"
            )
            return False
        positions = self.commit_positions()
        if positions:
            offsets = [TopicPartition(self.topics.events, p, o) for p, o in positions.items()]
            try:
                self._consumer.store_offsets(offsets=offsets)
                if commit:
                    self._consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                log.info("offsets not stored", extra={"error": str(exc)})
        self._dirty = False
        self.counters["checkpoints"] += 1
        return True

    # -- rebalance -------------------------------------------------------------

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned_once = self._assigned_once or bool(partitions)
        for tp in partitions:
            self.parts.setdefault(tp.partition, _Partition(pid=tp.partition))
        log.info("partitions assigned", extra={"partitions": sorted(self.parts)})

    def on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.counters["rebalances"] += 1
        if self.parts:
            self.checkpoint(commit=True)
        # Drop everything: retained partitions resume from their committed offsets.
        self.parts.clear()
        self._call_partition.clear()
        self.detector = self._new_detector()
        log.info(
            "partitions revoked; state dropped", extra={"partitions": [tp.partition for tp in partitions]}
        )

    # -- running ---------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def serve(self) -> int:
        from confluent_kafka import Consumer, KafkaError, Producer

        from callqual.transport.kafka import KafkaEventSink, ensure_service_topics

        created = ensure_service_topics(self.kafka, self.topics.pipeline())
        if created:
            log.info("created topics", extra={"topics": created})
        kafka_log = logging.getLogger("callqual.kafka")
        sinks: list[KafkaEventSink] = []
        producer = Producer(
            {
                **self.kafka.producer_config(),
                "error_cb": lambda err: sinks[0]._on_error(err) if sinks else None,
                # librdkafka's own log lines through logging, so stderr stays JSON lines only
                "logger": kafka_log,
                "log_level": 2,
            }
        )
        self._sink = KafkaEventSink(self.kafka, producer=producer)
        sinks.append(self._sink)
        conf = self.kafka.consumer_config(self.settings.group_id)
        # Replay after a crash must be rebuilt exactly: re-read from the stored offsets only.
        self._consumer = Consumer({**conf, "logger": kafka_log, "log_level": 2})
        self._consumer.subscribe([self.topics.events], on_assign=self.on_assign, on_revoke=self.on_revoke)
        log.info(
            "detector started",
            extra={"group_id": self.settings.group_id, "topic": self.topics.events},
        )
        s = self.settings
        last_message = time.monotonic()
        next_checkpoint = last_message + s.checkpoint_interval_s
        next_stats = last_message + s.stats_interval_s
        next_metrics = last_message
        code = EXIT_OK
        try:
            while not self._stop.is_set():
                batch = self._consumer.consume(num_messages=1000, timeout=0.2)
                now = time.monotonic()
                for msg in batch:
                    err = msg.error()
                    if err is not None:
                        if err.fatal():
                            raise RuntimeError(f"fatal kafka consumer error: {err.str()}")
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("kafka consumer error", extra={"error": err.str()})
                        continue
                    last_message = now
                    self.receive(msg.partition(), msg.offset(), _headers(msg.headers()), msg.value() or b"")
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
        except Exception as exc:
            log.exception("detector failed", extra={"error": str(exc)})
            code = EXIT_FATAL
        finally:
            if code == EXIT_UNDELIVERED:
                log.error("stopping without committing", extra={"error": self._fatal})
            try:
                self._consumer.close()
            finally:
                self._sink.close(timeout=5.0)
        log.info("detector stopped", extra={**self.counters, "exit_code": code})
        return code


def _is_open(detector: Detector, call_id: str) -> bool:
    # The assembler has no public membership test; its table is the authority on open calls.
    return call_id in detector.assembler._calls


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


def serve(settings: DetectorServiceSettings) -> int:
    service = DetectorService(settings)
    stop_on_signals(service.stop)
    if settings.metrics_port is not None:
        port = service.start_metrics(settings.metrics_host, settings.metrics_port)
        log.info("serving metrics", extra={"host": settings.metrics_host, "port": port})
    try:
        return service.serve()
    finally:
        if service.metrics_server is not None:
            service.metrics_server.close()
