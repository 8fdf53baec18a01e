"""The whole pipeline in one process: capture -> collector -> detector -> report.

The collector's events go to the detector through the same ``emit`` seam a
Kafka producer plugs into, so ``callqual analyze`` and the three-service
deployment run one analysis code path.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.collector.packet import Frame
from callqual.detector.call_assembler import AssemblerConfig
from callqual.detector.detector import CallScorer, Detector, Output
from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.source_rules import HandedOverSourceRules, SourceRules, SourceTotals, SourceVerdict
from callqual.pipeline.collector_totals import CollectorTotals
from callqual.pipeline.compact_outputs import CompactOutputs
from callqual.pipeline.report_json import write_report_frame, write_report_json
from callqual.schemas import (
    Alert,
    AnalysisReport,
    AnyEvent,
    CallRecord,
    SipMessageEvent,
    StreamRecord,
    Summary,
)


@dataclass(slots=True)
class _Outputs:
    calls: list[CallRecord] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    #: alert id -> its index in ``alerts``: a later version of an alert (the finished call's
    #: refinement of a mid-call alert) replaces the earlier one, as the store's upsert does
    alert_ids: dict[str, int] = field(default_factory=dict)

    def add(self, out: Output) -> None:
        if isinstance(out, CallRecord):
            self.calls.append(out)
        elif isinstance(out, StreamRecord):
            self.streams.append(out)
        elif out.alert_id in self.alert_ids:
            self.alerts[self.alert_ids[out.alert_id]] = out
        else:
            self.alert_ids[out.alert_id] = len(self.alerts)
            self.alerts.append(out)


class EmbeddedPipeline:
    """Collector and detector wired back to back; feed frames, then :meth:`report`."""

    def __init__(
        self,
        collector_config: CollectorConfig | None = None,
        rule_settings: RuleSettings | None = None,
        assembler_config: AssemblerConfig | None = None,
        scorer: CallScorer | None = None,
        on_event: Callable[[AnyEvent], None] | None = None,
        *,
        compact_outputs: bool = False,
    ) -> None:
        #: With ``compact_outputs`` finished records are kept as report JSON: only
        #: :meth:`write_json_report` can then report (what ``analyze --format json`` needs).
        self._out: _Outputs | CompactOutputs = CompactOutputs() if compact_outputs else _Outputs()
        self.rules = RuleEngine(rule_settings or RuleSettings())
        self.detector = Detector(self._out.add, self.rules, assembler_config, scorer)
        self._on_event = on_event
        # After each tick's reports, judge the calls still up, as the services do at a watermark:
        # else a mid-call alert waits for the next SIP message, the BYE on a quiet link.
        self.collector = Collector(self.deliver, collector_config, on_tick=self.on_tick)
        self.sip_messages = 0
        #: What the summary reports of the capture and the collector, when the collector ran
        #: elsewhere (``analyze --workers``: worker processes; ``--split``: a child); None: ours.
        self.collector_totals: CollectorTotals | None = None
        #: The source rules' alerts as fed back, once they were handed over to run elsewhere
        self._handed_over: HandedOverSourceRules | None = None

    def deliver(self, event: AnyEvent) -> None:
        """One collector event into the detector (and ``on_event``)."""
        if event.kind == "sip_message":
            self.sip_messages += 1
        if self._on_event is not None:
            self._on_event(event)
        self.detector.handle(event)

    def on_tick(self, _now: float) -> None:
        """After a capture second's reports, as the collector's tick says."""
        self.detector.judge_live()

    def run(self, frames: Iterable[Frame]) -> None:
        self.collector.run(frames)

    def run_events(self, items: Iterable[AnyEvent | float | SourceVerdict]) -> None:
        """A collector's output from elsewhere, in order: its events, and a float for each tick's time.

        Once source rules run elsewhere (:meth:`hand_over_source_rules`), an event's
        ``SourceVerdict``, if any, comes just before it.
        """
        deliver, tick = self.deliver, self.on_tick
        # ``deliver`` written out for a SIP message with no ``on_event``: a Python call less per
        # message (~0.5 us of the split's detector process; issue 14).
        handle = self.detector.handle if self._on_event is None else None
        for item in items:
            if type(item) is SipMessageEvent and handle is not None:
                self.sip_messages += 1
                handle(item)
            elif isinstance(item, float):
                tick(item)
            elif isinstance(item, SourceVerdict):
                self._handed_over_rules().put(item)
            else:
                deliver(item)

    def hand_over_source_rules(self, keep_from: str) -> SourceRules:
        """The relay check and the source rules before ``keep_from``, to run where the collector
        runs; their verdicts come back with the events (``RuleEngine.hand_over_source_rules``)."""
        rules, self._handed_over = self.rules.hand_over_source_rules(keep_from)
        return rules

    def adopt_source_rules_end(self, flushed: list[Alert], totals: SourceTotals) -> None:
        """The handed-over rules' end of input: what their flush raised, and their totals."""
        self._handed_over_rules().end(flushed, totals)

    def _handed_over_rules(self) -> HandedOverSourceRules:
        if self._handed_over is None:
            raise RuntimeError("source-rule verdicts from elsewhere, but the source rules run here")
        return self._handed_over

    def adopt_collector_totals(self, totals: CollectorTotals) -> None:
        """Report ``totals`` for the input: the collector that saw it ran elsewhere (``split.py``)."""
        self.collector_totals = totals

    def finish(self) -> None:
        self.collector.finish()
        self.detector.finish()

    def report(
        self, source: str, truncated: bool = False, reader_errors: Counter[str] | None = None
    ) -> AnalysisReport:
        out = self._out
        if not isinstance(out, _Outputs):
            raise TypeError("a pipeline with compact outputs reports through write_json_report")
        calls = sorted(out.calls, key=lambda c: (c.start_ts, c.call_id))
        streams = sorted(out.streams, key=lambda s: (s.first_ts, s.first_frame, s.ssrc))
        alerts = sorted(out.alerts, key=lambda a: (a.first_ts, a.rule, a.alert_id))
        by_category: Counter[str] = Counter(call.category for call in calls)
        counts = (len(calls), len(streams), len(alerts))
        summary = self._summary(source, truncated, reader_errors, counts=counts, by_category=by_category)
        return AnalysisReport(summary=summary, calls=calls, streams=streams, alerts=alerts)

    def write_json_report(
        self, out: BinaryIO, source: str, truncated: bool = False, reader_errors: Counter[str] | None = None
    ) -> None:
        """The report as ``report(...).model_dump_json(indent=2)`` plus a newline, in either output mode."""
        kept = self._out
        if isinstance(kept, _Outputs):
            write_report_json(self.report(source, truncated, reader_errors), out)
            return
        lists = kept.sorted_lists()
        counts = (len(lists["calls"]), len(lists["streams"]), len(lists["alerts"]))
        summary = self._summary(source, truncated, reader_errors, counts=counts, by_category=kept.categories)
        write_report_frame(AnalysisReport(summary=summary, calls=[], streams=[], alerts=[]), lists, out)

    def _summary(
        self,
        source: str,
        truncated: bool,
        reader_errors: Counter[str] | None,
        *,
        counts: tuple[int, int, int],
        by_category: Counter[str],
    ) -> Summary:
        """The summary for a report of ``counts`` (calls, streams, alerts)."""
        c = self.collector_totals or CollectorTotals.of(self.collector)
        errors = c.errors + (reader_errors or Counter())
        return Summary(
            source=source,
            frames=c.frames,
            bytes=c.bytes,
            first_ts=c.first_ts,
            last_ts=c.last_ts,
            sip_messages=self.sip_messages,
            calls=counts[0],
            streams=counts[1],
            alerts=counts[2],
            calls_by_category=dict(sorted(by_category.items())),
            errors=dict(sorted(errors.items())),
            skipped=dict(sorted((c.skipped + _relayed(self.rules)).items())),
            dropped=dict(sorted((c.dropped + _dropped(self.detector.assembler.counters)).items())),
            truncated=truncated,
        )


def _relayed(rules: RuleEngine) -> Counter[str]:
    """A proxy's relayed copies, which the source rules deliberately did not count."""
    return Counter({"sip.relayed": rules.counters.relayed})


def _dropped(counters: Counter[str]) -> Counter[str]:
    return Counter({k: v for k, v in counters.items() if k == "calls.evicted"})


def analyze_file(path: str | Path, collector_config: CollectorConfig | None = None) -> AnalysisReport:
    """Analyse a whole capture file in-process (what ``callqual analyze`` does, minus printing)."""
    pipeline = EmbeddedPipeline(collector_config)
    with open_capture(path) as capture:
        pipeline.run(capture)
        pipeline.finish()
        return pipeline.report(str(path), capture.truncated, capture.errors)
