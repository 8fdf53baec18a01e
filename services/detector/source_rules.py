"""The per-source rules and the relay check: what each SIP or malformed-SIP event raises, in order.

Split out of the rule engine because this part depends on nothing but the event stream (no
call, no suspicion mark, no tick), so it can run where the events are made: ``analyze
--split`` runs the relay check and the first rules of the catalogue in the collector's process
(:meth:`SourceRules.hand_over`), and the detector's engine gets, just before an observation,
what they said of it (a :class:`SourceVerdict`, sent only when it raised alerts or was a relayed
copy) and runs the remaining rules itself (:class:`HandedOverSourceRules`). The engine thus
records each alert (counts, suspicion marks) at the very point of the event sequence, and in
the very order, of the one-process run: a rule's state depends on no other rule's, and the
child's rules come first in the catalogue.
"""

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from mypy_extensions import mypyc_attr

from callqual.detector.rules import MalformedSip, RuleSettings, SourceRule, build_source_rules
from callqual.detector.rules.relay import RelayTracker
from callqual.schemas import Alert, MalformedSipEvent, SipMessageEvent


@dataclass(frozen=True, slots=True)
class SourceTotals:
    """What the engine's counters take from the source rules (plain values: it crosses processes)."""

    #: messages skipped as a proxy's relayed copies
    relayed: int = 0
    #: keys dropped from bounded tables, per source rule, plus "relay"
    evictions: dict[str, int] = field(default_factory=dict)
    #: current size of each source rule's per-key table
    table_sizes: dict[str, int] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type["SourceTotals"], tuple[int, dict[str, int], dict[str, int]]]:
        """Pickled as its constructor's arguments: compiled by mypyc, a frozen instance's fields
        cannot be set one by one, which is how pickle would rebuild it in the parent."""
        return (SourceTotals, (self.relayed, self.evictions, self.table_sizes))


class SourceVerdict(NamedTuple):
    """What the handed-over rules said of the observation that comes next in the stream."""

    alerts: list[Alert]
    #: a proxy's relayed copy: no rule may count it
    relayed: bool = False


class SourceRuleRunner(Protocol):
    """What the rule engine needs of the source rules: their alerts per observation, unrecorded."""

    def on_sip(self, event: SipMessageEvent) -> list[Alert]: ...
    def on_malformed_event(self, event: MalformedSipEvent) -> list[Alert]: ...
    def flush(self) -> list[Alert]: ...
    def totals(self) -> SourceTotals: ...


def _observe(rules: list[SourceRule], event: SipMessageEvent) -> list[Alert]:
    alerts: list[Alert] = []
    for rule in rules:
        found = rule.observe(event)
        if found:
            alerts.extend(found)
    return alerts


def _malformed_rule(rules: list[SourceRule]) -> MalformedSip | None:
    return next((r for r in rules if isinstance(r, MalformedSip)), None)


def _malformed(rule: MalformedSip | None, event: MalformedSipEvent) -> list[Alert]:
    """The malformed-SIP rule's alerts on a parse-error event (none if the rule is not here)."""
    if rule is None:
        return []
    return rule.observe_malformed(
        event.ts,
        event.src_ip,
        event.reason,
        event.frame,
        src_port=event.src_port,
        dst=f"{event.dst_ip}:{event.dst_port}",
        excerpt=event.excerpt,
    )


class SourceRules:
    """The source rules themselves (all of them, or the catalogue's first ones), the relay check in front."""

    def __init__(self, settings: RuleSettings, rules: list[SourceRule] | None = None) -> None:
        self.rules: list[SourceRule] = build_source_rules(settings) if rules is None else rules
        self.malformed = _malformed_rule(self.rules)
        self.relays = RelayTracker(settings.relay_max_transactions, settings.relay_window_s)
        self._settings = settings

    def hand_over(self, keep_from: str) -> tuple["SourceRules", list[SourceRule]]:
        """(the relay check and the rules before ``keep_from`` in the catalogue, to run elsewhere;
        the rules from ``keep_from`` on, to run where the engine is)."""
        at = next((i for i, r in enumerate(self.rules) if r.id == keep_from), len(self.rules))
        return SourceRules(self._settings, self.rules[:at]), self.rules[at:]

    def on_sip(self, event: SipMessageEvent) -> list[Alert]:
        if self.relays.is_relayed(event):
            # A proxy's copy of a request counted at its first hop: its origin is already charged.
            return []
        return _observe(self.rules, event)

    def verdict(self, event: SipMessageEvent) -> SourceVerdict | None:
        """:meth:`on_sip` as the handed-over rules' feeder sends it: None when nothing to say."""
        if self.relays.is_relayed(event):
            return SourceVerdict([], relayed=True)
        alerts = _observe(self.rules, event)
        return SourceVerdict(alerts) if alerts else None

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
        if self.malformed is None:
            return []
        return self.malformed.observe_malformed(
            ts, src_ip, reason, frame, src_port=src_port, dst=dst, excerpt=excerpt
        )

    def on_malformed_event(self, event: MalformedSipEvent) -> list[Alert]:
        """The collector's parse-error event, its excerpt as evidence; a proxy's relayed copy is skipped."""
        if self.relays.is_relayed_malformed(event):
            return []
        return _malformed(self.malformed, event)

    def malformed_verdict(self, event: MalformedSipEvent) -> SourceVerdict | None:
        if self.relays.is_relayed_malformed(event):
            return SourceVerdict([], relayed=True)
        alerts = _malformed(self.malformed, event)
        return SourceVerdict(alerts) if alerts else None

    def flush(self) -> list[Alert]:
        """End of input: what the rules raise on it, then every table forgotten."""
        alerts: list[Alert] = []
        for rule in self.rules:
            alerts.extend(rule.flush())
        self.relays.clear()
        return alerts

    def totals(self) -> SourceTotals:
        evictions = {r.id: r.evictions for r in self.rules}
        evictions["relay"] = self.relays.evictions
        return SourceTotals(self.relays.relayed, evictions, {r.id: r.table_size for r in self.rules})


@mypyc_attr(native_class=False)  # mypyc cannot compile a builtin exception's subclass natively
class SourceRulesElsewhereError(RuntimeError):
    """The handed-over rules were asked something only the rules themselves can answer."""


class HandedOverSourceRules:
    """The first source rules as another process ran them, followed by the ``kept`` rules run here.

    The feeder calls :meth:`put` with an observation's verdict just before that observation
    reaches the engine (which then asks :meth:`on_sip` or :meth:`on_malformed_event`), and
    :meth:`end` with what the other process's rules raised at the end and their totals.
    """

    def __init__(self, kept: list[SourceRule]) -> None:
        self._kept = kept
        self._kept_malformed = _malformed_rule(kept)
        self._next: SourceVerdict | None = None
        self._flushed: list[Alert] = []
        self._totals = SourceTotals()

    def put(self, verdict: SourceVerdict) -> None:
        """What the handed-over rules said of the next observation."""
        self._next = verdict

    def end(self, flushed: list[Alert], totals: SourceTotals) -> None:
        self._flushed, self._totals = flushed, totals

    def on_sip(self, event: SipMessageEvent) -> list[Alert]:
        verdict = self._next
        if verdict is None:
            return _observe(self._kept, event) if self._kept else []
        self._next = None
        if verdict.relayed:
            return []
        return [*verdict.alerts, *_observe(self._kept, event)]

    def on_malformed_event(self, event: MalformedSipEvent) -> list[Alert]:
        verdict = self._next
        self._next = None
        if verdict is not None and verdict.relayed:
            return []
        return [*(verdict.alerts if verdict is not None else ()), *_malformed(self._kept_malformed, event)]

    def flush(self) -> list[Alert]:
        flushed, self._flushed = self._flushed, []
        for rule in self._kept:
            flushed.extend(rule.flush())
        return flushed

    def totals(self) -> SourceTotals:
        """The other process's totals, with the kept rules' own, in catalogue order."""
        there = self._totals
        evictions = {k: v for k, v in there.evictions.items() if k != "relay"}
        evictions.update({r.id: r.evictions for r in self._kept})
        evictions["relay"] = there.evictions.get("relay", 0)
        sizes = {**there.table_sizes, **{r.id: r.table_size for r in self._kept}}
        return SourceTotals(there.relayed, evictions, sizes)
