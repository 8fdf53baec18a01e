"""A source-stage member as a service: ``sources`` partitions -> :class:`SourceStage` -> alerts.

Decoding, dead letters, checkpoints and rebalances as in the call stage
(:mod:`callqual.detector.service`); the loop is :func:`run_member`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from pydantic import ValidationError

from callqual.detector.rules.settings import RuleSettings
from callqual.detector.stages.call_judgement import (
    H_PART,
    PART_CALLS,
    PART_VERDICT,
    CallVerdict,
    FinishedCalls,
)
from callqual.detector.stages.member_loop import run_member
from callqual.detector.stages.source_stage import SourceStage
from callqual.schemas import Alert, CallRecord, MalformedSipEvent, SipMessageEvent, parse_event
from callqual.transport.base import Message, PartitionedSink, PartitionedSource
from callqual.transport.codec import encode
from callqual.transport.ordering import H_ORIGIN, header_dict, marker_of, position_of

if TYPE_CHECKING:
    from callqual.detector.service import DetectorServiceSettings
    from callqual.observability.metrics import AlerterMetrics

log = logging.getLogger("callqual.detector.service")


class SourceStageService:
    name = "source stage"

    def __init__(self, settings: DetectorServiceSettings, rules: RuleSettings, sink: PartitionedSink) -> None:
        self.settings = settings
        self.topics = settings.kafka().topics()
        self._sink = sink
        self._source: PartitionedSource | None = None
        self._stop = threading.Event()
        self.stage = SourceStage(
            rules,
            partitions=sink.partitions(self.topics.sources),
            origins=sink.partitions(self.topics.events),
            emit=self._emit,
            horizon_s=settings.source_horizon_s,
            max_pending=settings.max_pending,
            publish_call=self._publish_call,
            send_verdict=self._send_verdict,
        )
        self.counters: dict[str, int] = {"messages": 0, "markers": 0, "undecodable": 0, "alerts": 0}
        self.counters.update({"calls": 0, "verdicts": 0})
        self.counters.update({"checkpoints": 0, "rebalances": 0})
        self.assigned_once = False
        self.fatal: str | None = None
        self.last_activity = time.monotonic()
        #: Where the consumer lag goes (the process's /metrics); None: not exported
        self.metrics: AlerterMetrics | None = None

    def wait_idle(self, idle_s: float, timeout_s: float = 600.0) -> None:
        """Block until no message arrived for ``idle_s`` (wall time), or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and time.monotonic() - self.last_activity < idle_s:
            time.sleep(0.1)

    def close(self) -> None:
        self._sink.close(5.0)

    def _emit(self, alert: Alert) -> None:
        self._sink.emit(self.topics.alerts, alert.alert_id, alert)
        self.counters["alerts"] += 1

    def _publish_call(self, record: CallRecord) -> None:
        self._sink.emit(self.topics.calls, record.call_id, record)
        self.counters["calls"] += 1

    def _send_verdict(self, partition: int, verdict: CallVerdict) -> None:
        headers = ((H_PART, PART_VERDICT),)
        self._sink.send(self.topics.sources, encode(verdict), headers=headers, partition=partition)
        self.counters["verdicts"] += 1

    # -- input -------------------------------------------------------------------

    def receive(self, message: Message) -> None:
        self.last_activity = time.monotonic()
        p = message.partition
        headers = header_dict(message.headers)
        position = position_of(headers)
        part = headers.get(H_PART)
        if part == PART_VERDICT:
            try:
                verdict = CallVerdict.model_validate_json(message.value)
            except ValidationError as exc:
                self._undecodable(message, exc)
                return
            self.counters["messages"] += 1
            self.stage.push_verdict(p, message.offset, verdict)
            return
        try:
            origin = int(headers[H_ORIGIN])
            marker = marker_of(headers)
            if not 0 <= origin < self.stage.origins:
                raise ValueError(f"origin {origin} out of range")
        except (KeyError, ValueError) as exc:
            self._undecodable(message, exc)
            return
        self.counters["messages"] += 1
        if marker is not None:
            self.counters["markers"] += 1
            self.stage.push_marker(p, origin, message.offset, marker, position or (0.0, 0.0))
            return
        try:
            if position is None:
                raise ValueError("no position")
            if part == PART_CALLS:
                calls = FinishedCalls.model_validate_json(message.value)
                self.stage.push_calls(p, origin, message.offset, position, calls)
                return
            event = parse_event(message.value)
            if not isinstance(event, SipMessageEvent | MalformedSipEvent):
                raise ValueError("not an observation")
        except (ValidationError, ValueError) as exc:
            self._undecodable(message, exc)
            return
        self.stage.push(p, origin, message.offset, position, event)

    def _undecodable(self, message: Message, exc: Exception) -> None:
        # Only the call stage writes here: a foreign message is counted and skipped.
        self.counters["undecodable"] += 1
        log.warning(
            "sources message skipped",
            extra={"partition": message.partition, "offset": message.offset, "error": str(exc)[:300]},
        )

    def apply_ready(self, force: bool = False) -> int:
        """Never forced by silence: a lane is silent while its call-stage owner is being replaced
        (a rebalance), and applying past it then would reorder the rules' input. Only the
        merge's ``max_pending`` bound forces (counted)."""
        return self.stage.apply_ready()

    # -- offsets, rebalance, metrics -----------------------------------------------

    def attach(self, source: PartitionedSource) -> None:
        self._source = source

    def checkpoint(self, commit: bool = False) -> bool:
        pending = self._sink.flush(30.0)
        stats = self._sink.stats
        if pending or stats.failed + stats.dropped > 0 or stats.fatal:
            self.fatal = (
                f"alerts not delivered (pending {pending}, failed {stats.failed}): {stats.last_error}"
            )
            return False
        if self._source is not None:
            self._source.store(self.stage.commit_positions(), commit=commit)
        self.counters["checkpoints"] += 1
        return True

    def on_assign(self, partitions: list[int]) -> None:
        self.assigned_once = self.assigned_once or bool(partitions)
        self.stage.assign(partitions)

    def on_revoke(self, partitions: list[int]) -> None:
        self.counters["rebalances"] += 1
        self.checkpoint(commit=True)
        self.stage.clear()

    def export_metrics(self) -> None:
        """How far behind the end of its ``sources`` partitions this member is."""
        lag = self._source.lag() if self.metrics is not None and self._source is not None else None
        if self.metrics is not None and lag is not None:
            self.metrics.consumer_lag.labels(topic=self.topics.sources).set(lag)

    def stop(self) -> None:
        self._stop.set()

    def run(self, source: PartitionedSource) -> int:
        try:
            return run_member(self, source, self.settings, self._stop)
        finally:
            self._source = None
