"""sip_flood: request rate from one source, or from all sources together, above capacity.

Per source it catches a single DoS tool or a runaway client; the total
catches a distributed flood in which no single address stands out. A
request a proxy relays is counted once, for its origin: the rule engine
withholds the relayed copies from every source rule (``relay.py``), so our
own Kamailio forwarding a flood is never reported as the flood's source.
"""

from collections import deque
from dataclasses import dataclass

from callqual.detector.rules.base import SourceRule, ip_in, parse_networks
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.rules.windows import Incident, SlidingCounter, SourceTable
from callqual.schemas import Alert, SipMessageEvent

#: Key of the all-sources counter in alert ids (never a valid IP).
TOTAL_KEY = "*"


@dataclass(init=False, slots=True)
class _State:
    incident: Incident
    counter: SlidingCounter
    #: made at a method's first request: most sources send one or two of the flood methods
    by_method: dict[str, SlidingCounter]
    evidence: deque[SipMessageEvent]
    first_ts: float | None = None

    def __init__(
        self,
        incident: Incident,
        counter: SlidingCounter,
        by_method: dict[str, SlidingCounter],
        evidence: deque[SipMessageEvent],
        first_ts: float | None = None,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.incident = incident
        self.counter = counter
        self.by_method = by_method
        self.evidence = evidence
        self.first_ts = first_ts


class SipFlood(SourceRule):
    id = "sip_flood"
    severity = "critical"

    def __init__(self, settings: RuleSettings) -> None:
        super().__init__(settings)
        self._table: SourceTable[_State] = SourceTable(settings.max_sources, settings.source_idle_s)
        self._trusted = parse_networks(settings.trusted_networks)
        self._methods = frozenset(settings.flood_methods)
        self._total = self._new()

    def _new(self) -> _State:
        s = self.settings
        return _State(
            Incident(s.incident_quiet_s),
            SlidingCounter(s.flood_window_s),
            {},
            deque(maxlen=s.evidence_limit),
        )

    def observe(self, event: SipMessageEvent) -> list[Alert]:
        if not event.is_request or event.method not in self._methods:
            return []
        alerts: list[Alert] = []
        ts = event.ts
        total = self._count(self._total, event)
        if total is not None and total >= self.settings.flood_total:
            alerts.append(
                self._fire(
                    self._total, TOTAL_KEY, None, n=total, limit=self.settings.flood_total, event=event
                )
            )
        if not ip_in(event.src_ip, self._trusted):
            st = self._table.touch(event.src_ip, ts, self._new)
            n = self._count(st, event)
            if n is not None and n >= self.settings.flood_per_source:
                alerts.append(
                    self._fire(
                        st, event.src_ip, event.src_ip, n=n, limit=self.settings.flood_per_source, event=event
                    )
                )
        return alerts

    def _count(self, st: _State, event: SipMessageEvent) -> int | None:
        """Count the request; None while an alerted incident is still running."""
        ts = event.ts
        if st.incident.active(ts):
            return None
        if st.counter.total(ts) == 0:
            st.first_ts = ts
        method = event.method or ""
        counter = st.by_method.get(method)
        if counter is None:
            counter = st.by_method[method] = SlidingCounter(self.settings.flood_window_s)
        counter.add(ts)
        st.evidence.append(event)
        return st.counter.add(ts)

    def _fire(
        self, st: _State, key: str, source: str | None, *, n: int, limit: int, event: SipMessageEvent
    ) -> Alert:
        ts = event.ts
        first_ts = st.first_ts if st.first_ts is not None else ts
        st.incident.open(first_ts, ts, n)
        evidence = list(st.evidence)
        st.evidence.clear()
        window = self.settings.flood_window_s
        who = f"from {source}" if source else "from all sources"
        details: dict[str, float | int | str | None] = {
            "scope": "source" if source else "total",
            "requests": n,
            "threshold": limit,
            "window_s": window,
            "rate_per_s": round(n / window, 2),
        }
        for method in self.settings.flood_methods:
            counter = st.by_method.get(method)
            details[f"requests_{method.lower()}"] = counter.total(ts) if counter is not None else 0
        return self.source_alert(
            key,
            first_ts,
            ts,
            f"SIP flood {who}: {n} requests within {window:g} s",
            details=details,
            evidence=evidence,
            source_ip=source,
        )

    def reset(self) -> None:
        super().reset()
        self._total = self._new()
