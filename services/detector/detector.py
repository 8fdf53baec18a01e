"""The detector core: collector events in, call records, stream records and alerts out.

Transport-agnostic: the embedded ``callqual analyze`` feeds it directly, the
Kafka detector service feeds it from a consumer. Both therefore produce the
same records and alerts for the same capture.

Alerts do not all wait for the call to end: a final failure response is judged
when it is seen (a challenge or redirect, which the UA answers with a retry,
waits for the retry window unless it is the second challenge: an auth loop),
and a call still up is judged after each batch of interval reports. The finished
call then re-sends those alerts, same id, ``in_progress`` false: downstream keeps
the latest version of each id.
"""

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from callqual.detector.call_assembler import CALL_RECORD_FIELDS, AssemblerConfig, CallAssembler
from callqual.detector.call_context import CallContext
from callqual.detector.call_state import CallStatePublisher, CallStateSink
from callqual.detector.emodel import stream_mos
from callqual.detector.live_calls import LiveCalls
from callqual.detector.rules.failure_classes import RETRIED_BY_UA, failure_class
from callqual.detector.rules.in_progress import IN_PROGRESS_SUFFIX, LiveView
from callqual.detector.sip_dialog import SipDialog
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
from callqual.schemas.prebuilt import prebuilt

Output = CallRecord | StreamRecord | Alert
OutputSink = Callable[[Output], None]

#: How often (capture seconds) the open-call table is scanned for finished calls.
_EXPIRE_EVERY_S = 1.0


class RuleEvaluator(Protocol):
    """What the detector needs of the rule engine (see ``rule_engine.RuleEngine``)."""

    def on_sip(self, event: SipMessageEvent) -> list[Alert]: ...
    def on_malformed_event(self, event: MalformedSipEvent) -> list[Alert]: ...
    def on_call(self, ctx: CallContext) -> tuple[list[Alert], CallCategory]: ...
    def on_call_failure(self, ctx: CallContext) -> list[Alert]: ...
    def on_call_live(self, view: LiveView, already: set[str]) -> list[Alert]: ...
    def flush(self) -> list[Alert]: ...


class CallScorer(Protocol):
    """A learned model that may add an alert for a finished call (the IsolationForest)."""

    def score(self, ctx: CallContext) -> Alert | None: ...


def _credentials_refused(dialog: SipDialog) -> bool:
    """A second challenge in one call: the UA's credentials were refused (an auth loop), no retry.

    A UA answers a challenge once with credentials; challenged again, they were wrong (a stale
    nonce, RFC 7616 ``stale=true``, is the rare exception the finished call then corrects).
    """
    return dialog.responses.get("401", 0) + dialog.responses.get("407", 0) >= _CHALLENGES_IN_A_LOOP


#: Challenges in one call that make an auth loop
_CHALLENGES_IN_A_LOOP = 2


class Detector:
    def __init__(
        self,
        emit: OutputSink,
        rules: RuleEvaluator,
        config: AssemblerConfig | None = None,
        scorer: CallScorer | None = None,
        on_call_state: CallStateSink | None = None,
        *,
        on_finished: Callable[[CallContext], None] | None = None,
    ) -> None:
        self._emit = emit
        #: Told of each finished call (its due time...) just before its record is emitted
        self._on_finished = on_finished
        self._rules = rules
        self._scorer = scorer
        self.assembler = CallAssembler(config)
        self.counters: Counter[str] = Counter()
        self._now = float("-inf")
        self._next_expire = float("-inf")
        #: RTCP figures about an SSRC, latest wins: (fraction lost, jitter ms, rtt ms)
        self._rtcp: dict[int, tuple[float, float | None, float | None]] = {}
        self.live = LiveCalls(self.assembler.config.max_calls)
        #: Alerts raised before their call finished, per Call-ID: the final record refines them
        self._raised: dict[str, dict[str, Alert]] = {}
        #: Answered calls still up, by Call-ID (answer time): judged at every batch, for no_media
        self._answered: dict[str, float] = {}
        #: Compact updates about calls in flight, for live views (the service publishes them)
        self.call_state = (
            None
            if on_call_state is None
            else CallStatePublisher(on_call_state, self.assembler.config.max_calls)
        )

    @property
    def now(self) -> float:
        """The capture time the detector has reached."""
        return self._now

    def handle(self, event: AnyEvent) -> None:
        if isinstance(event, SipMessageEvent):
            self._on_sip(event)
            return
        if isinstance(event, RtpStreamReport):
            # One collector tick's reports (interval and final) come back to back: the calls are
            # judged once the batch is complete, at the next other event or watermark.
            self.counters["events.rtp_stream"] += 1
            if event.final:
                self._on_final_stream(event)
            else:
                self._on_interval_report(event)
            self._clock(event.last_ts)
            return
        self._judge_live()
        if isinstance(event, RtcpEvent):
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

    def _on_sip(self, event: SipMessageEvent) -> None:
        """One SIP message: the call table, the early verdicts, the source rules, then the clock.

        The hot path of signalling-only traffic (issue 14), written out: the live judgement runs
        only when a batch of interval reports is pending, the dialog is looked up only for a
        call-state publisher, and only a response to an INVITE can end or answer a call early.
        """
        live = self.live
        if live.has_pending:
            self._judge_live()
        self.counters["events.sip"] += 1
        for ctx in self.assembler.on_sip(event):
            self._finish_call(ctx)
        if not event.is_request and event.cseq_method == "INVITE":
            self._on_dialog_progress(event)
        if self.call_state is not None:
            dialog = self.assembler.dialog(event.call_id)
            if dialog is not None:
                self.call_state.on_dialog(dialog, event.ts)
        alerts = self._rules.on_sip(event)
        if alerts:
            self._emit_all(alerts)
        if live.has_pending:
            self._judge_live()
        self._clock(event.ts)

    def advance(self, ts: float) -> None:
        """Move capture time forward: judges live calls, finishes ended ones."""
        self._judge_live()
        self._clock(ts)

    def judge_live(self) -> None:
        """The input so far is complete (a transport's watermark): judge the calls still up.

        Without it a batch of interval reports waits for the next other event.
        """
        self._judge_live()

    def clock_to(self, ts: float) -> None:
        """Move capture time forward from outside the event stream (a wall clock on an idle link).

        Finishes calls whose timers ran out, but judges no live call: a batch of interval
        reports may be half-way in when another thread calls this.
        """
        self._clock(ts)

    def _clock(self, ts: float) -> None:
        self._now = max(self._now, ts)
        if self._now >= self._next_expire:
            self._next_expire = self._now + _EXPIRE_EVERY_S
            for ctx in self.assembler.expire(self._now):
                self._finish_call(ctx)

    def finish(self) -> None:
        """End of input: finish every open call and flush windowed rules."""
        self._judge_live()
        for ctx in self.assembler.drain(self._now if self._now != float("-inf") else 0.0):
            self._finish_call(ctx)
        self._emit_all(self._rules.flush())

    # -- before the call ends ------------------------------------------------

    def _on_dialog_progress(self, event: SipMessageEvent) -> None:
        """An answer starts the mid-call watch; a final failure is judged at once."""
        if event.is_request or event.cseq_method != "INVITE":
            return
        dialog = self.assembler.dialog(event.call_id)
        if dialog is None or (dialog.end_ts is not None and dialog.answer_ts is not None):
            self._answered.pop(event.call_id, None)
            return
        if dialog.answer_ts == event.ts:
            self._answered[event.call_id] = event.ts
        elif (
            dialog.answer_ts is None
            and dialog.end_ts == event.ts
            and dialog.final_status == event.status_code
            and (event.status_code not in RETRIED_BY_UA or _credentials_refused(dialog))
        ):
            ctx = self.assembler.snapshot(event.call_id, self._now)
            if ctx is not None:
                self._raise_early(event.call_id, self._rules.on_call_failure(ctx))

    def _on_interval_report(self, report: RtpStreamReport) -> None:
        call_id = report.call_id
        if call_id is None or self.assembler.dialog(call_id) is None:
            self.live.note_tick(report.last_ts)
            return
        self.assembler.touch(call_id, report.last_ts)
        self.live.on_report(call_id, self._stream_record(report))

    def _judge_live(self) -> None:
        """A batch of interval reports is complete: judge the calls it reported, and the silent ones."""
        if not self.live.has_pending:
            return
        for call_id in self.live.take_pending():
            self._judge_call(call_id)
        for call_id in [c for c in self._answered if not self.live.has_reports(c)]:
            self._judge_call(call_id)

    def _judge_call(self, call_id: str) -> None:
        """A call still up, as its reports show it now; raises each mid-call rule at most once."""
        dialog = self.assembler.dialog(call_id)
        intervals = self.live.intervals(call_id)
        if dialog is None or dialog.answer_ts is None or dialog.end_ts is not None:
            return
        ctx = self.assembler.snapshot(call_id, self._now, self.live.streams(call_id))
        if ctx is None:
            return
        view = LiveView(ctx, self._now, intervals, self.live.has_reports(call_id), self.live.batch_tick)
        already = set(self._raised.get(call_id, ()))
        self._raise_early(call_id, self._rules.on_call_live(view, already))
        if self.call_state is not None:
            streams = self.live.streams(call_id)
            raised = list(self._raised.get(call_id, ()))
            self.call_state.on_quality(dialog, self._now, streams, intervals, raised)

    def _raise_early(self, call_id: str, alerts: list[Alert]) -> None:
        if not alerts:
            return
        raised = self._raised.setdefault(call_id, {})
        for alert in alerts:
            if alert.rule not in raised:
                raised[alert.rule] = alert
                self.counters[f"alerts.early.{alert.rule}"] += 1
                self._emit(alert)

    def _refine(self, ctx: CallContext, alerts: list[Alert]) -> list[Alert]:
        """The finished call's alerts, plus each early one its whole-call rule did not confirm.

        A confirmed alert needs nothing (same id, the final version wins downstream); an
        unconfirmed one (media came back, the retry succeeded) still happened: it is re-sent
        closed, ``confirmed`` false, so no consumer keeps it open.
        """
        raised = self._raised.pop(ctx.record.call_id, {})
        self._answered.pop(ctx.record.call_id, None)
        self.live.forget(ctx.record.call_id)
        if self.call_state is not None:
            self.call_state.forget(ctx.record.call_id)
        final_rules = {a.rule for a in alerts}
        closing = ctx.record.end_ts if ctx.record.end_ts is not None else ctx.closed_ts
        for rule, early in raised.items():
            if rule in final_rules:
                continue
            closed = {
                "in_progress": False,
                "summary": early.summary.removesuffix(IN_PROGRESS_SUFFIX),
                "details": {**early.details, "confirmed": 0},
                "last_ts": max(early.last_ts, closing),
            }
            alerts.append(early.model_copy(update=closed))
        return alerts

    def _on_final_stream(self, report: RtpStreamReport) -> None:
        record = self._stream_record(report)
        self.live.on_final(record)
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
        alerts = self._refine(ctx, alerts)
        record = ctx.record
        # As ``model_copy(update=...)`` would, at a fifth of its cost (issue 14): the record was
        # built trusted from the call's own values a moment ago, and these three are the rules'.
        ctx.record = prebuilt(
            CallRecord,
            {
                **record.__dict__,
                "category": category,
                "problems": sorted({a.rule for a in alerts}),
                "failure_class": failure_class(record.final_status),
            },
            CALL_RECORD_FIELDS,
        )
        self.counters["calls.finished"] += 1
        for stream in ctx.streams:
            self._emit(stream)
        if self._on_finished is not None:
            self._on_finished(ctx)
        self._emit(ctx.record)
        self._emit_all(alerts)

    def _emit_all(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self._emit(alert)
