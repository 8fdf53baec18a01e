"""malformed_sip: one source keeps sending SIP we cannot parse.

Fuzzers, exploit attempts against parsers and broken scanners send
bursts of malformed messages; a buggy phone sends a few. The collector
reports each parse error (never the bytes), so this rule sees only counts.
"""

from collections import Counter, deque
from dataclasses import dataclass, field

from callqual.detector.rules.base import SourceRule
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.rules.windows import Incident, SlidingCounter, SourceTable
from callqual.schemas import Alert, EvidenceMessage, SipMessageEvent

#: Distinct reasons remembered per source (reasons are a small fixed vocabulary).
_MAX_REASONS = 16


@dataclass(init=False, slots=True)
class _State:
    incident: Incident
    counter: SlidingCounter
    evidence: deque[EvidenceMessage]
    first_ts: float | None = None
    reasons: Counter[str] = field(default_factory=Counter)

    def __init__(
        self,
        incident: Incident,
        counter: SlidingCounter,
        evidence: deque[EvidenceMessage],
        first_ts: float | None = None,
        reasons: Counter[str] | None = None,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.incident = incident
        self.counter = counter
        self.evidence = evidence
        self.first_ts = first_ts
        self.reasons = Counter() if reasons is None else reasons


class MalformedSip(SourceRule):
    id = "malformed_sip"
    severity = "warning"

    def __init__(self, settings: RuleSettings) -> None:
        super().__init__(settings)
        self._table: SourceTable[_State] = SourceTable(settings.max_sources, settings.source_idle_s)

    def _new(self) -> _State:
        s = self.settings
        return _State(
            Incident(s.incident_quiet_s), SlidingCounter(s.malformed_window_s), deque(maxlen=s.evidence_limit)
        )

    def observe(self, event: SipMessageEvent) -> list[Alert]:
        return []  # well-formed messages are none of this rule's business

    def observe_malformed(
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
        """Count one parse error; the keyword arguments only enrich the evidence."""
        st = self._table.touch(src_ip, ts, self._new)
        if st.incident.active(ts):
            return []
        if st.counter.total(ts) == 0:
            st.first_ts = ts
            st.reasons.clear()
        n = st.counter.add(ts)
        if reason in st.reasons or len(st.reasons) < _MAX_REASONS:
            st.reasons[reason] += 1
        # Without a port (a bare parse-error count) the source is the bare IP.
        st.evidence.append(
            EvidenceMessage(
                frame=frame,
                ts=ts,
                src=f"{src_ip}:{src_port}" if src_port is not None else src_ip,
                dst=dst,
                first_line=excerpt if excerpt is not None else f"<malformed SIP: {reason}>",
                headers={"reason": reason},
            )
        )
        s = self.settings
        if n < s.malformed_min_errors:
            return []
        first_ts = st.first_ts if st.first_ts is not None else ts
        st.incident.open(first_ts, ts, n)
        evidence = list(st.evidence)
        st.evidence.clear()
        top = ",".join(f"{r}={c}" for r, c in st.reasons.most_common(5))
        return [
            self.source_alert(
                src_ip,
                first_ts,
                ts,
                f"{n} malformed SIP messages from {src_ip} within {s.malformed_window_s:g} s",
                details={"errors": n, "reasons": top, "window_s": s.malformed_window_s},
                evidence=evidence,
                source_ip=src_ip,
            )
        ]
