"""The detector as a service: Kafka ``events`` -> :class:`Detector` core -> calls, streams, alerts.

One consumer group; Kafka spreads the ``events`` partitions over its members.
Because the collector keys every event by Call-ID, all of a call's events are
on one partition, so a member holds a call's whole state (partition-affine).
This is the call stage: what the per-source rules need, and each finished call
(whose ``suspicious`` depends on them), goes on to the source stage (``stages/``),
which publishes the call records.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from callqual.detector.call_context import CallContext
from callqual.detector.detector import CallScorer, Detector, Output
from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules import SOURCE_RULES
from callqual.detector.rules.relay import RelayTracker
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.source_routing import observation_partitions
from callqual.detector.stages.call_judgement import (
    H_PART,
    PART_CALLS,
    FinishedCall,
    destinations,
    encoded_batches,
)
from callqual.detector.stages.member_loop import EXIT_FATAL, EXIT_OK, EXIT_UNDELIVERED, run_member
from callqual.detector.stages.source_service import SourceStageService
from callqual.pipeline.stop_signals import stop_on_signals
from callqual.schemas import (
    Alert,
    AnyEvent,
    CallRecord,
    CallStateUpdate,
    MalformedSipEvent,
    RtpStreamReport,
    SipMessageEvent,
    StreamRecord,
    parse_event,
)
from callqual.transport.base import Message, PartitionedSink, PartitionedSource
from callqual.transport.codec import UnserialisableError, encode
from callqual.transport.ordering import (
    END_POSITION,
    H_CLOCK,
    H_ORIGIN,
    H_SEQ,
    Marker,
    Position,
    event_headers,
    header_dict,
    marker_headers,
    marker_of,
    position_of,
)
from callqual.transport.partition_merge import PartitionMerge
from callqual.transport.settings import KafkaSettings

if TYPE_CHECKING:
    from callqual.observability.http_server import MetricsServer
    from callqual.observability.metrics import AlerterMetrics

log = logging.getLogger("callqual.detector.service")

__all__ = ["EXIT_FATAL", "EXIT_OK", "EXIT_UNDELIVERED", "DetectorService", "DetectorServiceSettings"]

Stage = Literal["calls", "sources", "both"]


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
    #: ``calls``: per-call work, forwarding what the per-source rules need to ``sources``;
    #: ``sources``: the per-source rules over ``sources``; ``both``: the two in one process
    stage: Stage = "both"
    #: Capture seconds of ``sources`` a restarted source-stage member replays to rebuild windows
    source_horizon_s: float = Field(default=3600.0, ge=0)
    #: The learned model (``callqual train``) scoring every finished call; None: rules only.
    #: Loaded by the CLI before start-up (a missing or other-version file is refused there).
    model: Path | None = None

    @property
    def sources_group_id(self) -> str:
        return f"{self.group_id}-sources"

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

    name = "detector"

    def __init__(
        self,
        settings: DetectorServiceSettings,
        rules: RuleSettings,
        sink: PartitionedSink,
        scorer: CallScorer | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        #: kept across rebalances and runs: every new core scores with the same model
        self.scorer = scorer
        self.kafka = settings.kafka()
        self.topics = self.kafka.topics()
        self._sink = sink
        self._source: PartitionedSource | None = None
        self._stop = threading.Event()
        # The source stage raises the per-source alerts and judges which calls they make
        # suspicious (it has every key's traffic): this stage leaves those rules out.
        self._call_rules = rules.model_copy(
            update={"disabled_rules": sorted({*rules.disabled_rules, *_SOURCE_RULE_IDS})}
        )
        self._sources_partitions = sink.partitions(self.topics.sources)
        #: Calls finished while applying the current event, with their due times, to forward
        self._finished: list[FinishedCall] = []
        self._due: dict[str, float] = {}
        #: The last event applied (origin partition, position): drained calls go after it
        self._last_applied: tuple[int, Position] | None = None
        #: Origins whose end marker waits for the run's drained calls to be forwarded first
        self._ended: list[int] = []
        self._flood_methods = frozenset(rules.flood_methods)
        self._relays = RelayTracker(rules.relay_max_transactions, rules.relay_window_s)
        self._forwarded_low: dict[int, Position] = {}
        self.merge: PartitionMerge[AnyEvent] = PartitionMerge(settings.max_pending, self._forward_marker)
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
            "forwarded": 0,
            "calls_forwarded": 0,
        }
        self.fatal: str | None = None
        self.assigned_once = False
        #: the collector clock of the last stream report applied (see ``_apply``)
        self._report_clock = float("-inf")
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
        return Detector(
            self._on_output,
            RuleEngine(self._call_rules),
            scorer=self.scorer,
            on_call_state=self._on_call_state,
            on_finished=self._on_finished,
        )

    def _on_finished(self, ctx: CallContext) -> None:
        self._due[ctx.record.call_id] = ctx.due_ts

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
        if isinstance(out, Alert) and out.rule in _SOURCE_RULE_IDS:
            return  # the source stage's to raise, from every partition's traffic
        if isinstance(out, CallRecord):
            # To the source stage, which judges ``suspicious`` and publishes it (see ``_forward_calls``)
            due = self._due.pop(out.call_id, math.inf)
            self._finished.append(FinishedCall(record=out, due_ts=due if math.isfinite(due) else None))
            self.merge.release(out.call_id)
            return
        self._sink.emit(topic, output_key(out), out)
        self.counters["outputs"] += 1

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
            self._apply(ready.partition, ready.offset, ready.payload, ready.position)
            applied += 1
        self.counters["forced"] += self.merge.counters["forced"] - forced
        if applied:
            self._forward_progress()
        self._judge_live_calls()
        if self.merge.all_ended():
            self._finish_run()
        return applied

    def _judge_live_calls(self) -> None:
        """Judge the calls still up once every partition is past the last stream report's tick.

        One collector tick's reports share its clock: when no partition can still deliver an
        event at that clock, the batch is complete (watermarks move quiet partitions on).
        """
        if self._report_clock == float("-inf"):
            return
        frontier = self.merge.frontier()
        if frontier is not None and frontier[0] > self._report_clock:
            self.detector.judge_live()

    def _apply(self, partition: int, offset: int, event: AnyEvent, position: Position) -> None:
        if isinstance(event, RtpStreamReport):
            if position[0] > self._report_clock:
                # A later tick's report: every event before it is applied, so the previous batch is
                # complete; judge it now, as `analyze` does after each tick, or two batches merge.
                self.detector.judge_live()
            self._report_clock = position[0]
        self._last_applied = (partition, position)
        try:
            self.detector.handle(event)
        except (*_APPLY_ERRORS, UnserialisableError) as exc:
            # Valid by the schema, yet the rules (or an output's encoding) raised: a defect to fix,
            # but one event must not stop every call behind it. Logged with its traceback and kept.
            log.exception("event not applied", extra={"partition": partition, "offset": offset})
            self._dead_letter("apply_failed", partition, offset, exc, _wire_text(event))
            self._forward_calls(partition, position)
            return
        self.counters["applied"] += 1
        if isinstance(event, SipMessageEvent | MalformedSipEvent):
            self._forward(partition, event, position)
        self._forward_calls(partition, position)
        if isinstance(event, SipMessageEvent):
            # Until its record is out, a call needs its events from its first one on.
            if event.call_id in self.detector.assembler:
                self.merge.hold(event.call_id, partition, offset)
            else:
                self.merge.release(event.call_id)

    def _forward(self, origin: int, event: SipMessageEvent | MalformedSipEvent, position: Position) -> None:
        """An observation to the ``sources`` partitions of its keys; a proxy's relayed copy is not one."""
        relayed = (
            self._relays.is_relayed(event)
            if isinstance(event, SipMessageEvent)
            else self._relays.is_relayed_malformed(event)
        )
        if relayed:
            return
        value = encode(event)
        headers = (*event_headers(int(position[1]), position[0], b""), (H_ORIGIN, str(origin).encode()))
        for p in observation_partitions(event, self._flood_methods, self._sources_partitions):
            self._sink.send(self.topics.sources, value, headers=headers, partition=p)
        self.counters["forwarded"] += 1

    def _forward_calls(self, origin: int, position: Position) -> None:
        """The calls finished while applying the event at ``position``, just after its observation,
        to the ``sources`` partitions that judge them (their caller IP's and their account's)."""
        if not self._finished:
            return
        self.counters["calls_forwarded"] += len(self._finished)
        by_partition: dict[int, list[FinishedCall]] = {}
        for call in self._finished:
            for p in destinations(call.record, self._sources_partitions):
                by_partition.setdefault(p, []).append(call)
        self._finished.clear()
        headers = (
            (H_SEQ, repr(position[1] + 0.5).encode()),  # just after the event's own observation
            (H_CLOCK, repr(position[0]).encode()),
            (H_ORIGIN, str(origin).encode()),
            (H_PART, PART_CALLS),
        )
        for p, calls in by_partition.items():
            for value in encoded_batches(calls):
                self._sink.send(self.topics.sources, value, headers=headers, partition=p)

    def _forward_progress(self) -> None:
        """How far each origin got, so source lanes need not wait for the collector's next marker."""
        for origin, low in self.merge.low_marks().items():
            if math.isfinite(low[0]) and self._forwarded_low.get(origin) != low:
                self._forwarded_low[origin] = low
                self._forward_marker(origin, Marker.WATERMARK, low)

    def _forward_marker(self, origin: int, kind: Marker, position: Position) -> None:
        """The collector's progress on ``origin``, to every ``sources`` partition (lanes wait on it).

        An end marker waits for the run's end (:meth:`_finish_run`): the calls still open then
        go first."""
        if kind is Marker.END:
            self._ended.append(origin)
            return
        self._send_marker(origin, kind, position)

    def _send_marker(self, origin: int, kind: Marker, position: Position) -> None:
        # An end marker's position means nothing; a watermark's is finite once the origin spoke.
        seq, clock = (
            (0, 0.0)
            if kind is Marker.END or not math.isfinite(position[0])
            else (int(position[1]), position[0])
        )
        headers = (*marker_headers(kind, seq, clock, b""), (H_ORIGIN, str(origin).encode()))
        for p in range(self._sources_partitions):
            self._sink.send(self.topics.sources, b"{}", headers=headers, partition=p, progress=True)

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
        if self._last_applied is not None:
            self._forward_calls(*self._last_applied)
        for origin in self._ended:
            self._send_marker(origin, Marker.END, END_POSITION)
        self._ended.clear()
        self._last_applied = None
        self._relays.clear()
        self._forwarded_low.clear()
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
            self.fatal = (
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
        self.assigned_once = self.assigned_once or bool(partitions)
        self.merge.assign(partitions)
        log.info("partitions assigned", extra={"partitions": self.merge.partitions})

    def on_revoke(self, partitions: list[int]) -> None:
        self.counters["rebalances"] += 1
        if self.merge.partitions:
            self.checkpoint(commit=True)
        # Drop everything: retained partitions resume from their committed offsets.
        self.merge.clear()
        self._relays.clear()
        self._forwarded_low.clear()
        self._finished.clear()
        self._due.clear()
        self._ended.clear()
        self._last_applied = None
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
        try:
            return run_member(self, source, self.settings, self._stop)
        finally:
            self._source = None


#: What applying a schema-valid event can still raise on odd values (never a transport error).
_APPLY_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError)


_SOURCE_RULE_IDS = frozenset(r.id for r in SOURCE_RULES)


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


def kafka_service(
    settings: DetectorServiceSettings, rules: RuleSettings, scorer: CallScorer | None = None
) -> DetectorService:
    """A member publishing to Kafka, its topics created (idempotent)."""
    from callqual.transport.kafka import KafkaEventSink, ensure_service_topics

    kafka = settings.kafka()
    created = ensure_service_topics(kafka, kafka.topics().pipeline())
    if created:
        log.info("created topics", extra={"topics": created})
    return DetectorService(settings, rules, KafkaEventSink(kafka, client_logger=_CLIENT_LOG), scorer)


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


def kafka_source_stage(settings: DetectorServiceSettings, rules: RuleSettings) -> SourceStageService:
    """A source-stage member publishing its alerts to Kafka (topics as for the call stage)."""
    from callqual.transport.kafka import KafkaEventSink, ensure_service_topics

    kafka = settings.kafka()
    ensure_service_topics(kafka, kafka.topics().pipeline())
    return SourceStageService(settings, rules, KafkaEventSink(kafka, client_logger=_CLIENT_LOG))


def kafka_sources(member: SourceStageService) -> PartitionedSource:
    """The ``sources`` partitions of the source stage's own group."""
    from callqual.transport.kafka import KafkaPartitionedSource

    s = member.settings
    return KafkaPartitionedSource(
        s.kafka(),
        member.topics.sources,
        s.sources_group_id,
        on_assign=member.on_assign,
        on_revoke=member.on_revoke,
        client_logger=_CLIENT_LOG,
    )


def serve(settings: DetectorServiceSettings, rules: RuleSettings, scorer: CallScorer | None = None) -> int:
    """``callqual detector``: one member of the call stage, the source stage, or both, until a
    signal (or idle, if asked). With both, the source stage runs on a thread of its own.
    ``scorer`` (the model) judges finished calls, so only the call stage uses it."""
    calls = kafka_service(settings, rules, scorer) if settings.stage != "sources" else None
    # In one process the source stage outlives the call stage's last forward: it is stopped
    # after the call stage ended and it stayed idle, not by its own idle timer.
    together = settings.stage == "both" and settings.exit_when_idle_s is not None
    src_settings = settings.model_copy(update={"exit_when_idle_s": None}) if together else settings
    sources = kafka_source_stage(src_settings, rules) if settings.stage != "calls" else None
    members: list[DetectorService | SourceStageService] = [m for m in (calls, sources) if m is not None]

    def stop_all() -> None:
        for m in members:
            m.stop()

    stop_on_signals(stop_all)
    server: MetricsServer | None = None
    if settings.metrics_port is not None:
        from callqual.observability.http_server import start_metrics_server

        metrics, server = start_metrics_server(settings.metrics_host, settings.metrics_port)
        for m in members:  # one page for both stages: each exports its own topic's lag
            m.metrics = metrics
        if calls is not None:
            calls.metrics_server = server
        log.info("serving metrics", extra={"host": settings.metrics_host, "port": server.port})
    codes: list[int] = []
    thread: threading.Thread | None = None
    try:
        if sources is not None and calls is not None:
            source_member = sources
            thread = threading.Thread(
                target=lambda: codes.append(source_member.run(kafka_sources(source_member))),
                name="source-stage",
                daemon=True,
            )
            thread.start()
        if calls is not None:
            codes.append(calls.run(kafka_source(calls)))
        else:
            assert sources is not None
            codes.append(sources.run(kafka_sources(sources)))
        if thread is not None and sources is not None:
            if together and settings.exit_when_idle_s is not None:
                sources.wait_idle(settings.exit_when_idle_s)
            sources.stop()
            thread.join()
    finally:
        for m in members:
            m.stop()
            m.close()
        if server is not None:
            server.close()
    return max(codes) if codes else EXIT_FATAL
