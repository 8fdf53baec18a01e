"""``callqual store``: consume the pipeline's topics and keep everything in the call store.

Reads SIP messages and interval reports from ``events`` and the detector's ``calls``,
``streams`` and ``alerts``; writes them in batches (one transaction each) and acknowledges
a batch's messages, then commits offsets, only after the transaction committed. Input is
at-least-once and every row is an upsert, so a replay never doubles a row.

Database down (connection refused, server restarting): the batch is kept, nothing is
acknowledged, the write is retried with exponential backoff, ``callqual_store_db_up`` is 0
and ``/healthz`` answers 503; when the database is back the batch is written and the
service catches up from where it stood. A batch the database *rejects* (bad data) is
written message by message and the rejected ones go to the dead-letter topic, counted.

With ``writes_in_flight`` K >= 1 (the default) batches are written on a writer thread while the
loop decodes the next ones and builds their rows (``inflight.InFlightWriter``): at most K
batches handed over and not yet committed, written one after another in the order read,
acknowledged in that order after their commit. K = 0 writes in the loop, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from callqual.schemas import (
    Alert,
    CallRecord,
    CallStateUpdate,
    RtpStreamReport,
    SipMessageEvent,
    StreamRecord,
    parse_event,
)
from callqual.store.engine import migrate
from callqual.store.inflight import InFlightWriter, writer_switch_interval
from callqual.store.prepared import PreparedBatch, prepare
from callqual.store.records import BatchField, Record, record_kind, single_batch
from callqual.store.retention import apply_retention
from callqual.store.service_metrics import StoreMetrics
from callqual.store.service_settings import StoreSettings, build_engine
from callqual.store.writer import Batch, StoreWriter, is_unavailable
from callqual.transport import TOPICS, EventSink, EventSource, Message, Topics
from callqual.transport.ordering import Marker

__all__ = [
    "COLLECTOR_MARKERS",
    "READ_AT_ONCE",
    "StoreDeadLetter",
    "StoreMetrics",
    "StoreService",
    "StoreSettings",
    "build_engine",
    "input_topics",
]

log = logging.getLogger("callqual.store")

#: Records the loop reads in one go while they are at hand (its housekeeping runs between goes)
READ_AT_ONCE = 256


class StoreDeadLetter(BaseModel):
    """A consumed message the store could not decode or the database rejected."""

    kind: Literal["store_dead_letter"] = "store_dead_letter"
    topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    value: str


#: The collector's progress markers on the events topic (ordering information, not data)
COLLECTOR_MARKERS = frozenset(m.value for m in Marker)


def decode_record(t: Topics, message: Message) -> tuple[BatchField, Record] | None:
    """The record one message holds and the batch list it goes to (None: not kept).

    Raises pydantic's ``ValidationError`` or ``ValueError`` for what is not a record of its
    topic (the service dead-letters it).
    """
    topic = message.topic
    if topic == t.events:
        try:
            event = parse_event(message.value)
        except ValidationError:
            if record_kind(message.value) in COLLECTOR_MARKERS:
                return None
            raise
        if isinstance(event, SipMessageEvent):
            return "messages", event
        if isinstance(event, RtpStreamReport) and not event.final:
            return "intervals", event
        return None
    if topic == t.alerts:
        return "alerts", Alert.model_validate_json(message.value)
    if topic == t.call_state:
        return "call_states", CallStateUpdate.model_validate_json(message.value)
    if topic in (t.calls, t.streams):
        kind = record_kind(message.value)
        if kind == "call_record":
            return "calls", CallRecord.model_validate_json(message.value)
        if kind == "stream_record":
            return "streams", StreamRecord.model_validate_json(message.value)
        raise ValueError(f"unexpected kind {kind!r}")
    return None


@dataclass
class _Pending:
    """Messages consumed since the last commit, and what they decode to."""

    messages: list[Message] = field(default_factory=list)
    #: Each decoded record with its message and list: a rejected batch is written record by record
    items: list[tuple[Message, BatchField, Record]] = field(default_factory=list)
    #: The same records, gathered as they are decoded (one Batch, not one per record)
    records: Batch = field(default_factory=Batch)
    since: float = 0.0
    #: Its rows, built by the consuming loop when handed to the writer thread (None: built there)
    rows: PreparedBatch | None = None

    def batch(self) -> Batch:
        return self.records


#: What a batch can raise because of what is in it, not because the database is away: a row the
#: database refuses, or a value no row can hold (a capture time past year 9999 is valid on the wire).
_CONTENT_ERRORS = (SQLAlchemyError, ValueError, OverflowError)


def _away(exc: Exception) -> bool:
    return isinstance(exc, SQLAlchemyError) and is_unavailable(exc)


def _error_text(exc: BaseException) -> str:
    """The driver's message, first line: never statement parameters (or the URL)."""
    origin = getattr(exc, "orig", None) or exc
    text = str(origin).strip()
    return text.splitlines()[0][:300] if text else type(origin).__name__


def input_topics(t: Topics) -> list[str]:
    """The topics ``callqual store`` consumes."""
    return [t.events, t.calls, t.streams, t.alerts, t.call_state]


class StoreService:
    """Kafka records in, store rows out; ticked by ``run`` with an injectable monotonic clock."""

    def __init__(
        self,
        engine: Engine,
        settings: StoreSettings,
        metrics: StoreMetrics,
        *,
        topics: Topics = TOPICS,
        dead_letter: EventSink | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self.topics = topics
        self.dead_letter = dead_letter
        self.writer = StoreWriter(engine, settings.max_messages_per_call)
        self._monotonic = monotonic
        self._wall = wall
        self._pending = _Pending()
        self._inflight: InFlightWriter[_Pending] | None = None
        self._in_flight_messages = 0
        self._by_topic: dict[str, tuple[Counter, Gauge]] = {}
        #: Consumed per topic, and the newest record's timestamp (ms), not yet in the metrics
        self._consumed: dict[str, int] = {}
        self._newest_ms: dict[str, int] = {}
        self._migrated = False
        #: The writer's conflict counts already added to the metrics
        self._conflicts_seen = (0, 0)
        self._backoff = 0.0
        self._next_retention = 0.0
        self.heartbeat = monotonic()
        self.running = False
        self.db_up = False
        self.failures = 0

    @property
    def pending_messages(self) -> int:
        """Consumed and not yet written (and so not acknowledged), in the writer's hands or not."""
        return len(self._pending.messages) + self._in_flight_messages

    def input_topics(self) -> list[str]:
        return input_topics(self.topics)

    # -- input -----------------------------------------------------------------

    def decode(self, message: Message) -> Batch:
        """What one message adds to the store (empty for events the store does not keep)."""
        found = decode_record(self.topics, message)
        return Batch() if found is None else single_batch(*found)

    def handle(self, message: Message) -> None:
        """Decode and queue one message; undecodable ones are dead-lettered (acked with the batch).

        The store's hottest loop (once per consumed record): the consumed counts and lag are
        noted in plain dicts and reach Prometheus once per batch (``publish_metrics``); a
        counter's ``inc`` and two gauges' ``set`` per record cost as much as the batch's rows.
        """
        topic = message.topic
        self._consumed[topic] = self._consumed.get(topic, 0) + 1
        if message.timestamp_ms is not None:
            self._newest_ms[topic] = message.timestamp_ms
        p = self._pending
        if not p.messages:
            p.since = self._monotonic()
        p.messages.append(message)
        try:
            found = decode_record(self.topics, message)
        except (ValidationError, ValueError) as exc:
            self.metrics.undecodable.inc()
            self._dead_letter(message, f"undecodable: {type(exc).__name__}")
            return
        if found is not None:
            name, record = found
            p.items.append((message, name, record))
            getattr(p.records, name).append(record)

    def publish_metrics(self) -> None:
        """Consumed counts, lag and pending messages noted since the last call, to Prometheus
        (each batch handed over or written, and whenever the input is idle). The lag is the wall
        time now minus the newest record's timestamp, so it includes the wait for its batch."""
        if self._consumed:
            for topic, n in self._consumed.items():
                self._topic_metrics(topic)[0].inc(n)
            self._consumed.clear()
        if self._newest_ms:
            now = self._wall()
            for topic, ms in self._newest_ms.items():
                self._topic_metrics(topic)[1].set(max(0.0, now - ms / 1000.0))
            self._newest_ms.clear()
        self.metrics.pending.set(self.pending_messages)

    def _topic_metrics(self, topic: str) -> tuple[Counter, Gauge]:
        """A topic's consumed counter and lag gauge, looked up once (``labels`` per message cost
        as much as decoding one); as many entries as input topics."""
        found = self._by_topic.get(topic)
        if found is None:
            m = self.metrics
            found = (m.messages_consumed.labels(topic=topic), m.consumer_lag_seconds.labels(topic=topic))
            self._by_topic[topic] = found
        return found

    def _dead_letter(self, message: Message, reason: str) -> None:
        log.warning("dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason)
        self.metrics.dead_lettered.inc()
        if self.dead_letter is not None:
            self.dead_letter.emit(
                self.topics.deadletter,
                message.key,
                StoreDeadLetter(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=message.key,
                    reason=reason,
                    value=message.value[:65536].decode(errors="replace"),
                ),
            )

    # -- output ----------------------------------------------------------------

    def due(self) -> bool:
        p = self._pending
        if not p.messages:
            return False
        full = len(p.messages) >= self.settings.batch_size
        return full or self._monotonic() - p.since >= self.settings.batch_interval_s

    def flush(self, source: EventSource | None) -> bool:
        """Write what is pending in one transaction, then acknowledge it; False if the DB is away."""
        p = self._pending
        written = not p.messages or self._attempt(p)
        if written and p.messages:
            self._acknowledge([p], source)
            self._pending = _Pending()
        self.publish_metrics()
        return written

    def _attempt(self, p: _Pending) -> bool:
        """One try at writing ``p`` (nothing acknowledged); False, with the backoff set, if the DB is away."""
        try:
            if not self._migrated:
                migrate(self.engine)
                self._migrated = True
            with self.metrics.write_seconds.time():
                try:
                    self._write(p)
                finally:
                    self._note_conflicts()
        except SQLAlchemyError as exc:
            if not is_unavailable(exc):
                raise
            self.failures += 1
            self.db_up = False
            self.metrics.db_up.set(0)
            self.metrics.db_errors.labels(kind="unavailable").inc()
            self._backoff = min(
                self.settings.backoff_max_s, max(self.settings.backoff_initial_s, self._backoff * 2)
            )
            log.warning("store unavailable, retrying in %.1f s: %s", self._backoff, _error_text(exc))
            return False
        if not self.db_up:
            log.info("store available")
        self.db_up = True
        self._backoff = 0.0
        self.metrics.db_up.set(1)
        return True

    def _note_conflicts(self) -> None:
        """Count what other members made the writer retry (transactions, partition creations)."""
        now = (self.writer.conflicts, self.writer.partition_races)
        conflicts, races = (a - b for a, b in zip(now, self._conflicts_seen, strict=True))
        self._conflicts_seen = now
        if conflicts:
            self.metrics.db_errors.labels(kind="conflict").inc(conflicts)
        if races:
            self.metrics.db_errors.labels(kind="partition_race").inc(races)

    def _acknowledge(self, written: list[_Pending], source: EventSource | None) -> None:
        """Acknowledge committed batches' messages, then commit the offsets.

        An ack covers its message and everything before it on its partition, so the last message
        read of each partition is acknowledged (one ``store_offsets`` per partition and batch on
        Kafka instead of one per record)."""
        if source is None or not written:
            return
        last: dict[tuple[str, int], Message] = {}
        for p in written:
            for message in p.messages:
                last[message.topic, message.partition] = message
        for message in last.values():
            source.ack(message)
        commit = getattr(source, "commit", None)
        if commit is not None:
            commit()

    def _write(self, p: _Pending) -> None:
        batch = p.batch()
        try:
            stats = self.writer.write_batch(batch) if p.rows is None else self.writer.write_prepared(p.rows)
        except _CONTENT_ERRORS as exc:
            if _away(exc):
                raise
            # Something in the batch cannot be stored: find it, keep the rest.
            self.metrics.db_errors.labels(kind="rejected").inc()
            log.warning("batch rejected (%s); writing message by message", _error_text(exc))
            for message, name, record in p.items:
                single = single_batch(name, record)
                try:
                    self._count(single, self.writer.write_batch(single).messages_dropped)
                except _CONTENT_ERRORS as one:
                    if _away(one):
                        raise
                    self._dead_letter(message, f"rejected: {_error_text(one)}")
            self.metrics.batches.inc()
            return
        self._count(batch, stats.messages_dropped)
        self.metrics.batches.inc()

    def _count(self, batch: Batch, over_bound: int) -> None:
        m = self.metrics.rows_written
        m.labels(kind="call").inc(len(batch.calls))
        m.labels(kind="call_state").inc(len(batch.call_states))
        m.labels(kind="stream").inc(len(batch.streams))
        m.labels(kind="interval").inc(len(batch.intervals))
        m.labels(kind="alert").inc(len(batch.alerts))
        m.labels(kind="sip_message").inc(len(batch.messages) - over_bound)
        self.metrics.sip_messages_over_bound.inc(over_bound)

    def retention(self) -> None:
        """Apply ``retention_days`` by the wall clock (hourly by default); errors wait for the next run."""
        days = self.settings.retention_days
        if days is None or self._monotonic() < self._next_retention:
            return
        self._next_retention = self._monotonic() + self.settings.retention_interval_s
        try:
            result = apply_retention(self.engine, datetime.fromtimestamp(self._wall(), UTC), days)
        except SQLAlchemyError as exc:
            log.warning("retention failed: %s", _error_text(exc))
            return
        self.writer.forget_partitions()
        self.metrics.partitions_dropped.inc(result.partitions_dropped)
        self.metrics.rows_expired.inc(sum(result.deleted.values()))

    # -- loop ------------------------------------------------------------------

    def run(self, source: EventSource, stop: threading.Event, *, poll_s: float = 0.2) -> int:
        """Consume until ``stop`` (or idle, with ``exit_when_idle_s``); 0, or 1 if left unwritten."""
        if self.settings.writes_in_flight:
            with writer_switch_interval():
                return self._run_overlapped(source, stop, poll_s)
        return self._run_in_line(source, stop, poll_s)

    def _read_at_hand(self, source: EventSource) -> None:
        """Records already at hand (``poll`` without waiting), up to READ_AT_ONCE or a full batch,
        without the loop's housekeeping per record (heartbeat, writer, clock and idle checks)."""
        room = min(READ_AT_ONCE, self.settings.batch_size - len(self._pending.messages))
        poll, handle = source.poll, self.handle
        for _ in range(room):
            message = poll(0.0)
            if message is None:
                return
            handle(message)

    def _run_in_line(self, source: EventSource, stop: threading.Event, poll_s: float) -> int:
        self.running = True
        last_input = self._monotonic()
        try:
            while not stop.is_set():
                self.heartbeat = self._monotonic()
                if self._backoff and self._pending.messages:
                    # The database is away: hold the batch (bounded), read nothing more until it is written.
                    if stop.wait(self._backoff):
                        break
                    self.flush(source)
                    continue
                self.retention()
                message = source.poll(poll_s)
                if message is not None:
                    last_input = self._monotonic()
                    self.handle(message)
                    self._read_at_hand(source)
                if self.due() or (message is None and self._pending.messages):
                    self.flush(source)
                    # Idle means nothing to read: a long write is not idle time.
                    last_input = self._monotonic()
                idle = self._monotonic() - last_input
                limit = self.settings.exit_when_idle_s
                if limit is not None and not self._pending.messages and idle >= limit:
                    log.info("idle for %.1f s, stopping", idle)
                    break
            return 0 if self.flush(source) else 1
        finally:
            self.publish_metrics()
            self.running = False

    def _run_overlapped(self, source: EventSource, stop: threading.Event, poll_s: float) -> int:
        """The loop reads and decodes; a writer thread writes, at most ``writes_in_flight`` behind."""
        writer = InFlightWriter(
            self._write_until_committed, self.settings.writes_in_flight, idle=self.retention
        )
        self._inflight = writer
        self.running = True
        last_input = self._monotonic()
        unwritten = False
        try:
            while not stop.is_set():
                self.heartbeat = self._monotonic()
                unwritten |= self._collect(writer, source, 0.0)
                if writer.full:
                    # Bounded: read nothing more until the oldest batch handed over is committed.
                    self.metrics.writer_full.inc()
                    unwritten |= self._collect(writer, source, poll_s)
                    continue
                message = source.poll(poll_s)
                if message is not None:
                    last_input = self._monotonic()
                    self.handle(message)
                    self._read_at_hand(source)
                if self.due() or (message is None and self._pending.messages):
                    self._hand_over(writer)
                idle = self._monotonic() - last_input
                limit = self.settings.exit_when_idle_s
                if limit is not None and not self.pending_messages and idle >= limit:
                    log.info("idle for %.1f s, stopping", idle)
                    break
            self._hand_over(writer)
            # Stopping: each batch left gets one more try; none after one that is not written.
            writer.stopping.set()
            while len(writer):
                self.heartbeat = self._monotonic()
                unwritten |= self._collect(writer, source, poll_s)
            return 1 if unwritten else 0
        finally:
            writer.stopping.set()
            writer.close()
            self._inflight = None
            self.publish_metrics()
            self.running = False

    def _hand_over(self, writer: InFlightWriter[_Pending]) -> None:
        p = self._pending
        if not p.messages:
            return
        try:
            # The rows are built here, while the writer thread has the previous batch in the database.
            p.rows = prepare(p.batch())
        except (ValueError, OverflowError):
            p.rows = None  # a record no row can hold: the writer thread finds it, message by message
        writer.submit(p)
        self._in_flight_messages += len(p.messages)
        self._pending = _Pending()
        self.metrics.batches_in_flight.set(len(writer))
        self.publish_metrics()

    def _collect(self, writer: InFlightWriter[_Pending], source: EventSource, timeout: float) -> bool:
        """Acknowledge the batches the writer committed; True if one was given back unwritten."""
        done = writer.collect(timeout)
        if not done:
            return False
        self._in_flight_messages -= sum(len(p.messages) for p, _ in done)
        self._acknowledge([p for p, ok in done if ok], source)
        self.metrics.batches_in_flight.set(len(writer))
        self.metrics.pending.set(self.pending_messages)
        return not all(ok for _, ok in done)

    def _write_until_committed(self, p: _Pending) -> bool:
        """On the writer thread: write ``p``, retrying with backoff; False if stopped first."""
        writer = self._inflight
        while not self._attempt(p):
            if writer is None or writer.stopping.wait(self._backoff):
                return False
        return True

    def healthy(self, max_stall_s: float = 30.0) -> bool:
        """Serving, the loop turning, and the last write reached the database."""
        return self.running and self.db_up and self._monotonic() - self.heartbeat < max_stall_s
