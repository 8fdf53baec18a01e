"""sip_scanner: a source runs a known scanning tool or sweeps many extensions.

Two independent signs, one alert per source incident:

* a User-Agent of a known attack tool (see ``RuleSettings.scanner_user_agents``);
* an OPTIONS/REGISTER/INVITE sweep: many distinct To-users targeted from one
  source within the window *and never reached*. A user counts as reached
  when the answer proves a real, routable target (180/183/2xx, or busy,
  cancelled, declined). That keeps NATed offices full of phones (whose
  registrations succeed) and trunks (whose calls ring) out, while an
  enumeration (404s, 401s or silence) accumulates quickly.
"""

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from callqual.detector.rules.base import SourceRule, ip_in, parse_networks, uri_user
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.rules.windows import Incident, SourceTable
from callqual.schemas import Alert, SipMessageEvent

SWEEP_METHODS = frozenset({"OPTIONS", "REGISTER", "INVITE"})
#: Responses that prove the targeted user exists and was routed.
REACHED_STATUSES = frozenset({180, 183, 486, 487, 600, 603, *range(200, 300)})


@dataclass(slots=True)
class _State:
    incident: Incident
    evidence: deque[SipMessageEvent]
    #: unreached user -> last request time, oldest first; at most the threshold
    users: OrderedDict[str, float] = field(default_factory=OrderedDict)
    requests: int = 0


class SipScanner(SourceRule):
    id = "sip_scanner"
    severity = "warning"

    def __init__(self, settings: RuleSettings) -> None:
        super().__init__(settings)
        self._table: SourceTable[_State] = SourceTable(settings.max_sources, settings.source_idle_s)
        self._trusted = parse_networks(settings.trusted_networks)
        self._agents = tuple(a.lower() for a in settings.scanner_user_agents)

    def _new(self) -> _State:
        s = self.settings
        return _State(Incident(s.incident_quiet_s), deque(maxlen=s.evidence_limit))

    def _tool(self, ua: str | None) -> str | None:
        if not ua:
            return None
        low = ua.lower()
        return next((a for a in self._agents if a in low), None)

    def observe(self, event: SipMessageEvent) -> list[Alert]:
        if not event.is_request:
            self._on_response(event)
            return []
        tool = self._tool(event.user_agent)
        sweep = event.method in SWEEP_METHODS and event.to_tag is None
        if tool is None and not sweep:
            return []
        src, ts = event.src_ip, event.ts
        st = self._table.touch(src, ts, self._new)
        st.requests += 1
        if st.incident.active(ts):
            return []
        if tool is not None:
            return [self._fire(st, src, ts, ts, trigger="user_agent", event=event, tool=tool)]
        if ip_in(src, self._trusted):
            return []
        user = uri_user(event.to_uri) or uri_user(event.request_uri)
        if user is None:
            return []
        cutoff = ts - self.settings.scanner_window_s
        while st.users and next(iter(st.users.values())) < cutoff:
            st.users.popitem(last=False)
        st.users[user] = ts
        st.users.move_to_end(user)
        st.evidence.append(event)
        if len(st.users) < self.settings.scanner_distinct_users:
            return []
        first_ts = min(e.ts for e in st.evidence)
        first_ts = min(first_ts, next(iter(st.users.values())))
        return [self._fire(st, src, first_ts, ts, trigger="sweep", event=event)]

    def _on_response(self, event: SipMessageEvent) -> None:
        if event.status_code not in REACHED_STATUSES:
            return
        st = self._table.get(event.dst_ip)
        if st is None or not st.users:
            return
        user = uri_user(event.to_uri)
        if user is not None:
            st.users.pop(user, None)

    def _fire(
        self,
        st: _State,
        src: str,
        first_ts: float,
        ts: float,
        *,
        trigger: str,
        event: SipMessageEvent,
        tool: str | None = None,
    ) -> Alert:
        distinct = len(st.users)
        evidence = list(st.evidence) if trigger == "sweep" else [event]
        st.incident.open(first_ts, ts, st.requests)
        st.users.clear()
        st.evidence.clear()
        if trigger == "user_agent":
            summary = f"SIP scanner at {src}: User-Agent {event.user_agent!r}"
        else:
            summary = (
                f"SIP scanner at {src}: {distinct} unreached users targeted within "
                f"{self.settings.scanner_window_s:g} s"
            )
        return self.source_alert(
            src,
            first_ts,
            ts,
            summary,
            details={
                "trigger": trigger,
                "tool": tool,
                "user_agent": event.user_agent,
                "distinct_users": distinct if trigger == "sweep" else None,
                "method": event.method,
                "window_s": self.settings.scanner_window_s,
            },
            evidence=evidence,
            source_ip=src,
        )
