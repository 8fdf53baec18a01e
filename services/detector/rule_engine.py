"""Runs the rule catalogue over a stream of SIP events, parse errors and finished calls.

The engine owns no I/O: the detector feeds it and publishes what it
returns. It also remembers, for a bounded time, which sources, accounts
and calls security alerts named, so a call that finishes later can be
categorised ``suspicious`` even though its own rules saw nothing wrong.
"""

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from callqual.detector.call_context import CallContext
from callqual.detector.categories import categorize
from callqual.detector.rules import RULE_IDS, SECURITY_RULES, RuleSettings, build_call_rules
from callqual.detector.rules.call_failed import CallFailed
from callqual.detector.rules.in_progress import LiveView, build_live_rules
from callqual.detector.source_rules import (
    HandedOverSourceRules,
    SourceRuleRunner,
    SourceRules,
    SourceRulesElsewhereError,
)
from callqual.detector.suspicion import SuspicionMarks
from callqual.schemas import Alert, CallCategory, MalformedSipEvent, SipMessageEvent

#: Bound of the early-counted ids (about one per open call with an alert); the oldest go first.
_MAX_COUNTED_EARLY = 100_000


@dataclass(frozen=True, slots=True)
class EngineCounters:
    """A snapshot for metrics; every dict has a key per rule, zero included."""

    sip_messages: int = 0
    #: messages the source rules skipped as a proxy's relayed copies (see ``rules/relay.py``)
    relayed: int = 0
    malformed: int = 0
    calls: int = 0
    alerts_by_rule: dict[str, int] = field(default_factory=dict)
    calls_by_category: dict[str, int] = field(default_factory=dict)
    #: keys dropped from bounded tables, per source rule, plus "suspicious_marks" and "relay"
    evictions: dict[str, int] = field(default_factory=dict)
    #: current size of each source rule's per-key table
    table_sizes: dict[str, int] = field(default_factory=dict)


class RuleEngine:
    def __init__(self, settings: RuleSettings) -> None:
        # Given, never read here: settings come from the environment only at the edges (cli/).
        self.settings = settings
        s = self.settings
        self.call_rules = build_call_rules(s)
        local = SourceRules(s)
        #: the per-source rules (relay check included); :meth:`hand_over_source_rules` moves them
        self.sources: SourceRuleRunner = local
        #: every source rule, wherever it runs
        self.source_rules = local.rules
        self._alerts: Counter[str] = Counter({r: 0 for r in RULE_IDS})
        self._categories: Counter[str] = Counter()
        self._sip = 0
        self._malformed_count = 0
        self._calls = 0
        self.marks = SuspicionMarks(s.max_sources, s.suspicious_source_ttl_s)
        self.live_rules = build_live_rules(s)
        #: rules whose verdict on a failed call needs nothing after its final response
        self._at_failure = [r for r in self.call_rules if isinstance(r, CallFailed)]
        #: ids already counted before their call finished (the final copy is not counted again)
        self._counted_early: OrderedDict[str, None] = OrderedDict()

    def hand_over_source_rules(self, keep_from: str) -> tuple[SourceRules, HandedOverSourceRules]:
        """The relay check and the source rules before ``keep_from``, to run elsewhere (``analyze
        --split``'s collector process), and what replaces them here: their verdicts, fed back in
        order, and the rules from ``keep_from`` on (``detector/source_rules.py``).

        Before any event: the rules must see the whole stream, where they run.
        """
        if not isinstance(self.sources, SourceRules) or self._sip or self._malformed_count:
            raise SourceRulesElsewhereError("the source rules can be handed over once, before any event")
        there, kept = self.sources.hand_over(keep_from)
        handed = HandedOverSourceRules(kept)
        self.sources = handed
        return there, handed

    # ------------------------------------------------------------------ inputs
    def on_sip(self, event: SipMessageEvent) -> list[Alert]:
        self._sip += 1
        alerts = self.sources.on_sip(event)
        return self._record(alerts, event.ts) if alerts else alerts

    def on_malformed(
        self,
        ts: float,
        src_ip: str,
        reason: str,
        frame: int,
        *,
        src_port: int | None = None,
        dst: str = "",
        excerpt: str | None = None,
    ) -> list[Alert]:
        """A bare parse error (no event): needs the source rules here, not handed over."""
        if not isinstance(self.sources, SourceRules):
            raise SourceRulesElsewhereError("a bare parse error needs the source rules, which run elsewhere")
        self._malformed_count += 1
        rules = self.sources
        return self._record(
            rules.on_malformed(ts, src_ip, reason, frame, src_port=src_port, dst=dst, excerpt=excerpt), ts
        )

    def on_malformed_event(self, event: MalformedSipEvent) -> list[Alert]:
        """The collector's parse-error event, its excerpt as evidence; a proxy's relayed copy is skipped."""
        self._malformed_count += 1
        return self._record(self.sources.on_malformed_event(event), event.ts)

    def on_call_failure(self, ctx: CallContext) -> list[Alert]:
        """A call whose final failure response was just seen: the alerts that need no more."""
        alerts: list[Alert] = []
        for rule in self._at_failure:
            alerts.extend(rule.evaluate(ctx))
        return self._record_early(alerts)

    def on_call_live(self, view: LiveView, already: set[str]) -> list[Alert]:
        """A call still up, after its latest interval reports: mid-call alerts of rules not in ``already``."""
        alerts = [a for r in self.live_rules if r.id not in already and (a := r.judge(view)) is not None]
        return self._record_early(alerts)

    def on_call(self, ctx: CallContext) -> tuple[list[Alert], CallCategory]:
        self._calls += 1
        alerts: list[Alert] = []
        for rule in self.call_rules:
            alerts.extend(rule.evaluate(ctx))
        self._record([a for a in alerts if a.alert_id not in self._counted_early])
        for a in alerts:
            self._counted_early.pop(a.alert_id, None)
        category = categorize(ctx, [*alerts, *self.marks.naming(ctx.record, ctx.due_ts)])
        self._categories[category] += 1
        return alerts, category

    def flush(self) -> list[Alert]:
        alerts = self.sources.flush()
        self.marks.clear()
        return self._record(alerts)

    # ----------------------------------------------------------------- helpers
    def _record_early(self, alerts: list[Alert]) -> list[Alert]:
        for a in alerts:
            self._counted_early[a.alert_id] = None
        while len(self._counted_early) > _MAX_COUNTED_EARLY:
            self._counted_early.popitem(last=False)
        return self._record(alerts)

    def _record(self, alerts: list[Alert], raised_ts: float = math.inf) -> list[Alert]:
        """Count ``alerts``; mark what security ones name, raised by a message at ``raised_ts``."""
        for a in alerts:
            self._alerts[a.rule] += 1
            if a.rule in SECURITY_RULES:
                self.marks.put(a, raised_ts)
        return alerts

    @property
    def counters(self) -> EngineCounters:
        sources = self.sources.totals()
        evictions = dict(sources.evictions)
        evictions["suspicious_marks"] = self.marks.evictions
        evictions["relay"] = evictions.pop("relay", 0)  # (the key order of old: rules, marks, relay)
        return EngineCounters(
            sip_messages=self._sip,
            relayed=sources.relayed,
            malformed=self._malformed_count,
            calls=self._calls,
            alerts_by_rule=dict(self._alerts),
            calls_by_category=dict(self._categories),
            evictions=evictions,
            table_sizes=sources.table_sizes,
        )
