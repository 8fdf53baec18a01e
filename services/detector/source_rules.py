"""The per-source rules and the relay check: what each SIP or malformed-SIP event raises, in order.

Split out of the rule engine because this part depends on nothing but the event stream (no
call, no suspicion mark, no tick), so it can run where the events are made: ``analyze
--split`` runs :class:`SourceRules` in the collector's process and the detector's engine
replays what it raised (:class:`HandedOverSourceRules`), each observation's alerts handed to
the engine as that observation comes through, so the engine records them (counts, marks) at the
very point of the event sequence where running the rules itself would have.
"""

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

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


class SourceAlerts(NamedTuple):
    """What the source rules raised on the observation that comes next in the stream."""

    alerts: list[Alert]


class SourceRuleRunner(Protocol):
    """What the rule engine needs of the source rules: their alerts per observation, unrecorded."""

    def on_sip(self, event: SipMessageEvent) -> list[Alert]: ...
    def on_malformed_event(self, event: MalformedSipEvent) -> list[Alert]: ...
    def flush(self) -> list[Alert]: ...
    def totals(self) -> SourceTotals: ...


class SourceRules:
    """The source rules themselves, with the relay check in front of them."""

    def __init__(self, settings: RuleSettings) -> None:
        self.rules: list[SourceRule] = build_source_rules(settings)
        self.malformed = next((r for r in self.rules if isinstance(r, MalformedSip)), None)
        self.relays = RelayTracker(settings.relay_max_transactions, settings.relay_window_s)

    def on_sip(self, event: SipMessageEvent) -> list[Alert]:
        alerts: list[Alert] = []
        if self.relays.is_relayed(event):
            # A proxy's copy of a request counted at its first hop: its origin is already charged.
            return alerts
        for rule in self.rules:
            found = rule.observe(event)
            if found:
                alerts.extend(found)
        return alerts

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
        return self.on_malformed(
            event.ts,
            event.src_ip,
            event.reason,
            event.frame,
            src_port=event.src_port,
            dst=f"{event.dst_ip}:{event.dst_port}",
            excerpt=event.excerpt,
        )

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


class SourceRulesElsewhereError(RuntimeError):
    """The handed-over rules were asked something only the rules themselves can answer."""


class HandedOverSourceRules:
    """The source rules' output as another process computed it, returned in the same order.

    The feeder calls :meth:`put` with an observation's alerts just before that observation
    reaches the engine (which then gets them from :meth:`on_sip` or
    :meth:`on_malformed_event`), and :meth:`end` with the flush's alerts and the totals.
    """

    def __init__(self) -> None:
        self._next: list[Alert] = []
        self._flushed: list[Alert] = []
        self._totals = SourceTotals()

    def put(self, alerts: list[Alert]) -> None:
        """What the next observation raised."""
        self._next = alerts

    def end(self, flushed: list[Alert], totals: SourceTotals) -> None:
        self._flushed, self._totals = flushed, totals

    def on_sip(self, event: SipMessageEvent) -> list[Alert]:
        return self._take()

    def on_malformed_event(self, event: MalformedSipEvent) -> list[Alert]:
        return self._take()

    def _take(self) -> list[Alert]:
        alerts = self._next
        if alerts:
            self._next = []
        return alerts

    def flush(self) -> list[Alert]:
        flushed, self._flushed = self._flushed, []
        return flushed

    def totals(self) -> SourceTotals:
        return self._totals
