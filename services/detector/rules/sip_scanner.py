"""sip_scanner: a source runs a known scanning tool, sweeps many extensions or many hosts.

Three independent signs, one alert per source incident:

* a User-Agent of a known attack tool (see ``RuleSettings.scanner_user_agents``);
* an OPTIONS/REGISTER/INVITE sweep: many distinct To-users targeted from one
  source within the window *and never reached*. A user counts as reached
  when the answer proves a real, routable target (180/183/2xx, or busy,
  cancelled, declined). That keeps NATed offices full of phones (whose
  registrations succeed) and trunks (whose calls ring) out, while an
  enumeration (404s, 401s or silence) accumulates quickly;
* a host sweep (svmap and its kind, whatever User-Agent they claim):
  out-of-dialog requests to many distinct address:port targets that never
  answer at all. A scan of an address range mostly hits silence; a proxy
  pinging its registered phones gets answers, and a target that contacted
  the source first (a phone that registered with it, a peer that sent it a
  call) never counts. Silence is only known once the answer timeout has
  passed, so targets are judged from a queue of deadlines as capture time
  moves on (and at the end of the input).

A proxy relaying a scan is not the scanner: the engine withholds relayed
copies (and the answers on the relayed leg) from the source rules
(``relay.py``), so the sweep is charged to the address that sent it first.
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


#: Remembered (sender, receiver) address pairs of SIP requests, for "who contacted whom first".
_MAX_CONTACTS = 200_000
#: RFC 3261 17.1.1.1 T1: a UAC retransmits an unanswered request after it.
_T1_S = 0.5
#: Distinct User-Agents remembered by ``_tool`` before the memo starts over
_TOOLS_SEEN_LIMIT = 4096


@dataclass(init=False, slots=True)
class _State:
    incident: Incident
    evidence: deque[SipMessageEvent]
    #: unreached user -> last request time, oldest first; at most the threshold
    users: OrderedDict[str, float] = field(default_factory=OrderedDict)
    requests: int = 0
    #: target address:port -> its first unanswered request, oldest first
    pending: OrderedDict[str, SipMessageEvent] = field(default_factory=OrderedDict)
    #: targets that stayed silent past the answer timeout -> their first request
    silent: OrderedDict[str, SipMessageEvent] = field(default_factory=OrderedDict)

    def __init__(  # noqa: PLR0917 - the dataclass's fields, in order
        self,
        incident: Incident,
        evidence: deque[SipMessageEvent],
        users: OrderedDict[str, float] | None = None,
        requests: int = 0,
        pending: OrderedDict[str, SipMessageEvent] | None = None,
        silent: OrderedDict[str, SipMessageEvent] | None = None,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.incident = incident
        self.evidence = evidence
        self.users = OrderedDict() if users is None else users
        self.requests = requests
        self.pending = OrderedDict() if pending is None else pending
        self.silent = OrderedDict() if silent is None else silent


class SipScanner(SourceRule):
    id = "sip_scanner"
    severity = "warning"

    def __init__(self, settings: RuleSettings) -> None:
        super().__init__(settings)
        self._table: SourceTable[_State] = SourceTable(settings.max_sources, settings.source_idle_s)
        self._trusted = parse_networks(settings.trusted_networks)
        self._agents = tuple(a.lower() for a in settings.scanner_user_agents)
        #: "sender>receiver" of requests seen, least recently seen first (bounded)
        self._contacts: OrderedDict[str, None] = OrderedDict()
        #: (deadline, source): when a source's pending targets are next due for judging
        self._due: deque[tuple[float, str]] = deque()
        self._now = float("-inf")
        #: User-Agent -> the scanner it names (or None): a few agents carry nearly all traffic
        self._tools_seen: dict[str, str | None] = {}

    def _new(self) -> _State:
        s = self.settings
        return _State(Incident(s.incident_quiet_s), deque(maxlen=s.evidence_limit))

    def _tool(self, ua: str | None) -> str | None:
        if not ua:
            return None
        if ua in self._tools_seen:
            return self._tools_seen[ua]
        low = ua.lower()
        tool = next((a for a in self._agents if a in low), None)
        if len(self._tools_seen) >= _TOOLS_SEEN_LIMIT:
            self._tools_seen.clear()  # bounded: User-Agents are the sender's to choose
        self._tools_seen[ua] = tool
        return tool

    def observe(self, event: SipMessageEvent) -> list[Alert]:
        now = self._now = max(self._now, event.ts)
        due = self._due
        alerts = self._judge_due(now) if due and due[0][0] <= now else []
        if not event.is_request:
            self._on_response(event)
            return alerts
        self._note_contact(event)
        tool = self._tool(event.user_agent)
        sweep = event.method in SWEEP_METHODS and event.to_tag is None
        if tool is None and not sweep:
            return alerts
        src, ts = event.src_ip, event.ts
        st = self._table.touch(src, ts, self._new)
        st.requests += 1
        if st.incident.active(ts):
            return alerts
        if tool is not None:
            return [*alerts, self._fire(st, src, ts, ts, trigger="user_agent", event=event, tool=tool)]
        if ip_in(src, self._trusted):
            return alerts
        self._track_target(st, event)
        user = uri_user(event.to_uri) or uri_user(event.request_uri)
        if user is None:
            return alerts
        cutoff = ts - self.settings.scanner_window_s
        while st.users and next(iter(st.users.values())) < cutoff:
            st.users.popitem(last=False)
        st.users[user] = ts
        st.users.move_to_end(user)
        st.evidence.append(event)
        if len(st.users) < self.settings.scanner_distinct_users:
            return alerts
        first_ts = min(e.ts for e in st.evidence)
        first_ts = min(first_ts, next(iter(st.users.values())))
        return [*alerts, self._fire(st, src, first_ts, ts, trigger="sweep", event=event)]

    # -- host sweep ---------------------------------------------------------------------------

    def _note_contact(self, event: SipMessageEvent) -> None:
        key = f"{event.src_ip}>{event.dst_ip}"
        self._contacts[key] = None
        self._contacts.move_to_end(key)
        if len(self._contacts) > _MAX_CONTACTS:
            self._contacts.popitem(last=False)

    def _track_target(self, st: _State, event: SipMessageEvent) -> None:
        """Remember an out-of-dialog request to a target that never contacted the source first."""
        target = f"{event.dst_ip}:{event.dst_port}"
        if target in st.pending or target in st.silent or f"{event.dst_ip}>{event.src_ip}" in self._contacts:
            return
        limit = self.settings.scanner_silent_targets
        if len(st.pending) >= 4 * limit:
            # Enough undecided targets to decide on; more would only cost memory.
            return
        st.pending[target] = event
        self._due.append((event.ts + self.settings.scanner_answer_timeout_s, event.src_ip))

    def _judge_due(self, now: float) -> list[Alert]:
        """Judge the sources whose oldest pending target's answer timeout has passed."""
        alerts: list[Alert] = []
        while self._due and self._due[0][0] <= now:
            _, src = self._due.popleft()
            st = self._table.get(src)
            if st is not None:
                alerts.extend(self._judge(st, src, now))
        return alerts

    def _judge(self, st: _State, src: str, now: float, timeout: float | None = None) -> list[Alert]:
        s = self.settings
        timeout = s.scanner_answer_timeout_s if timeout is None else timeout
        while st.pending:
            target, first = next(iter(st.pending.items()))
            if first.ts + timeout > now:
                break
            del st.pending[target]
            st.silent[target] = first
        cutoff = now - s.scanner_window_s - timeout
        while st.silent and next(iter(st.silent.values())).ts < cutoff:
            st.silent.popitem(last=False)
        if len(st.silent) < s.scanner_silent_targets or st.incident.active(now):
            return []
        probes = list(st.silent.values())
        last = probes[-1]
        return [self._fire(st, src, probes[0].ts, last.ts, trigger="host_sweep", event=last, probes=probes)]

    def flush(self) -> list[Alert]:
        """End of input: targets are judged by what came before the last message.

        Nothing more will arrive, so a probe at least RFC 3261's T1 (0.5 s,
        a UAC's first retransmission) older than the last message, still
        unanswered, counts as silent: a capture that ends with a scan must
        not hide it.
        """
        alerts = self._judge_due(self._now)
        for src, st in self._table.items():
            if st.pending:
                alerts.extend(
                    self._judge(st, src, self._now, min(_T1_S, self.settings.scanner_answer_timeout_s))
                )
        self._due.clear()
        self._contacts.clear()
        self.reset()
        return alerts

    def _on_response(self, event: SipMessageEvent) -> None:
        st = self._table.get(event.dst_ip)
        if st is None:
            return
        # Any answer, even an error, shows a live SIP host: not a silent target.
        target = f"{event.src_ip}:{event.src_port}"
        st.pending.pop(target, None)
        st.silent.pop(target, None)
        if event.status_code not in REACHED_STATUSES or not st.users:
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
        probes: list[SipMessageEvent] | None = None,
    ) -> Alert:
        distinct = len(st.users)
        silent = len(st.silent)
        evidence = list(st.evidence) if trigger == "sweep" else probes or [event]
        st.incident.open(first_ts, ts, st.requests)
        st.users.clear()
        st.evidence.clear()
        st.pending.clear()
        st.silent.clear()
        if trigger == "user_agent":
            summary = f"SIP scanner at {src}: User-Agent {event.user_agent!r}"
        elif trigger == "host_sweep":
            summary = (
                f"SIP scanner at {src}: {silent} targets probed without any answer within "
                f"{self.settings.scanner_window_s:g} s"
            )
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
                "silent_targets": silent if trigger == "host_sweep" else None,
                "method": event.method,
                "window_s": self.settings.scanner_window_s,
            },
            evidence=evidence,
            source_ip=src,
        )
