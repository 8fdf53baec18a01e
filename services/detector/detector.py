"""The detector core: collector events in, call records, stream records and alerts out.

Transport-agnostic: the embedded ``callqual analyze`` feeds it directly, the
Kafka detector service feeds it from a consumer. Both therefore produce the
same records and alerts for the same capture.
"""

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from callqual.detector.call_assembler import AssemblerConfig, CallAssembler
from callqual.detector.call_context import CallContext
from callqual.detector.emodel import stream_mos
from callqual.detector.rules.failure_classes import failure_class
from callqual.schemas import (
    Alert,
    AnyEvent,
    CallCategory,
    CallRecord,
    MalformedSipEvent,
    RtcpEvent,
    RtpStreamReport,
    SipMessageEvent,
    StreamRecord,
)

Output = CallRecord | StreamRecord | Alert
OutputSink = Callable[[Output], None]

#: How often (capture seconds) the open-call table is scanned for finished calls.
_EXPIRE_EVERY_S = 1.0


class RuleEvaluator(Protocol):
    """What the detector needs of the rule engine (see ``rule_engine.RuleEngine``)."""

    def on_sip(self, event: SipMessageEvent) -> list[Alert]: ...
    def on_malformed_event(self, event: MalformedSipEvent) -> list[Alert]: ...
    def on_call(self, ctx: CallContext) -> tuple[list[Alert], CallCategory]: ...
    def flush(self) -> list[Alert]: ...


class CallScorer(Protocol):
    """A learned model that may add an alert for a finished call (the IsolationForest)."""

    def score(self, ctx: CallContext) -> Alert | None: ...


class Detector:
    def __init__(
        self,
        emit: OutputSink,
        rules: RuleEvaluator,
        config: AssemblerConfig | None = None,
        scorer: CallScorer | None = None,
    ) -> None:
        self._emit = emit
        self._rules = rules
        self._scorer = scorer
        self.assembler = CallAssembler(config)
        self.counters: Counter[str] = Counter()
        self._now = float("-inf")
        self._next_expire = float("-inf")
        #: RTCP figures about an SSRC, latest wins: (fraction lost, jitter ms, rtt ms)
        self._rtcp: dict[int, tuple[float, float | None, float | None]] = {}

    def handle(self, event: AnyEvent) -> None:
        if isinstance(event, SipMessageEvent):
            self.counters["events.sip"] += 1
            for ctx in self.assembler.on_sip(event):
                self._finish_call(ctx)
            self._emit_all(self._rules.on_sip(event))
            ts = event.ts
        elif isinstance(event, RtpStreamReport):
            self.counters["events.rtp_stream"] += 1
            ts = event.last_ts
            if event.final:
                self._on_final_stream(event)
            else:
                self.assembler.touch(event.call_id, event.last_ts)
        elif isinstance(event, RtcpEvent):
            self.counters["events.rtcp"] += 1
            ts = event.ts
            for block in event.blocks:
                self._rtcp[block.ssrc] = (block.fraction_lost, block.jitter_ms, block.rtt_ms)
            if len(self._rtcp) > 100_000:  # bound; RTCP detail is best-effort
                self._rtcp.clear()
                self.counters["rtcp.table_reset"] += 1
            self.assembler.touch(event.call_id, event.ts)
        elif isinstance(event, MalformedSipEvent):
            self.counters["events.sip_malformed"] += 1
            ts = event.ts
            self._emit_all(self._rules.on_malformed_event(event))
        else:  # pragma: no cover - the union is exhaustive
            return
        self.advance(ts)

    def advance(self, ts: float) -> None:
        """Move capture time forward; finishes calls whose timers ran out."""
        self._now = max(self._now, ts)
        if self._now >= self._next_expire:
            self._next_expire = self._now + _EXPIRE_EVERY_S
            for ctx in self.assembler.expire(self._now):
                self._finish_call(ctx)

    def finish(self) -> None:
        """End of input: finish every open call and flush windowed rules."""
        for ctx in self.assembler.drain(self._now if self._now != float("-inf") else 0.0):
            self._finish_call(ctx)
        self._emit_all(self._rules.flush())

    def _on_final_stream(self, report: RtpStreamReport) -> None:
        record = self._stream_record(report)
        if not self.assembler.on_stream(record):
            # No open call owns it: heuristic RTP, or media outliving its call's linger.
            self.counters["streams.without_call"] += 1
            self._emit(record)

    def _stream_record(self, report: RtpStreamReport) -> StreamRecord:
        fields = report.model_dump(exclude={"kind", "schema_version", "final"})
        scored = stream_mos(report)
        rtcp = self._rtcp.get(report.ssrc)
        return StreamRecord(
            **fields,
            r_factor=None if scored is None else round(scored[0], 2),
            mos=None if scored is None else round(scored[1], 2),
            rtcp_fraction_lost=None if rtcp is None else rtcp[0],
            rtcp_jitter_ms=None if rtcp is None else rtcp[1],
            rtcp_rtt_ms=None if rtcp is None else rtcp[2],
        )

    def _finish_call(self, ctx: CallContext) -> None:
        alerts, category = self._rules.on_call(ctx)
        if self._scorer is not None:
            learned = self._scorer.score(ctx)
            if learned is not None:
                alerts.append(learned)
        problems = sorted({a.rule for a in alerts})
        ctx.record = ctx.record.model_copy(
            update={
                "category": category,
                "problems": problems,
                "failure_class": failure_class(ctx.record.final_status),
            }
        )
        self.counters["calls.finished"] += 1
        for stream in ctx.streams:
            self._emit(stream)
        self._emit(ctx.record)
        self._emit_all(alerts)

    def _emit_all(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self._emit(alert)
