"""register_bruteforce: one source collects many authentication failures to its REGISTERs.

The registrar's 401/403/407 answers are sent *to* the guesser, so the key
is the response's destination address; counting responses (not requests)
means only guesses the registrar actually rejected count. Every honest
registration also meets one 401 challenge, hence the second condition:
failures must dominate the final answers (a healthy client sees ~50 %).
The third tells guessing from enumeration: a guesser fails repeatedly on
the same few usernames, a sweep fails once per username. When a proxy
relays the REGISTERs to a registrar, the registrar's answer to the proxy is
on the relayed leg and withheld (``relay.py``): the failures are counted
once, on their way back to the guesser.
"""

from collections import deque
from dataclasses import dataclass, field

from callqual.detector.rules.base import SourceRule, ip_in, parse_networks, uri_user
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.rules.windows import Incident, SlidingCounter, SourceTable
from callqual.schemas import Alert, SipMessageEvent

#: Distinct usernames remembered per source, for the alert details only.
_MAX_USERS = 64


@dataclass(init=False, slots=True)
class _State:
    incident: Incident
    failures: SlidingCounter
    successes: SlidingCounter
    evidence: deque[SipMessageEvent]
    first_ts: float | None = None
    users: set[str] = field(default_factory=set)

    def __init__(  # noqa: PLR0917 - the dataclass's fields, in order
        self,
        incident: Incident,
        failures: SlidingCounter,
        successes: SlidingCounter,
        evidence: deque[SipMessageEvent],
        first_ts: float | None = None,
        users: set[str] | None = None,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.incident = incident
        self.failures = failures
        self.successes = successes
        self.evidence = evidence
        self.first_ts = first_ts
        self.users = set() if users is None else users


class RegisterBruteforce(SourceRule):
    id = "register_bruteforce"
    severity = "critical"

    def __init__(self, settings: RuleSettings) -> None:
        super().__init__(settings)
        self._table: SourceTable[_State] = SourceTable(settings.max_sources, settings.source_idle_s)
        self._trusted = parse_networks(settings.trusted_networks)
        self._statuses = frozenset(settings.bruteforce_statuses)

    def _new(self) -> _State:
        s = self.settings
        return _State(
            Incident(s.incident_quiet_s),
            SlidingCounter(s.bruteforce_window_s),
            SlidingCounter(s.bruteforce_window_s),
            deque(maxlen=s.evidence_limit),
        )

    def observe(self, event: SipMessageEvent) -> list[Alert]:
        status = event.status_code
        if event.is_request or event.cseq_method != "REGISTER" or status is None or status < 200:
            return []
        failed = status in self._statuses
        if not failed and not 200 <= status < 300:
            return []
        attacker, ts = event.dst_ip, event.ts
        if ip_in(attacker, self._trusted):
            return []
        st = self._table.touch(attacker, ts, self._new)
        if not failed:
            st.successes.add(ts)
            return []
        if st.incident.active(ts):
            return []
        if st.failures.total(ts) == 0:
            st.first_ts = ts
            st.users.clear()
        failures = st.failures.add(ts)
        successes = st.successes.total(ts)
        st.evidence.append(event)
        user = uri_user(event.to_uri)
        if user is not None and len(st.users) < _MAX_USERS:
            st.users.add(user)
        s = self.settings
        ratio = failures / (failures + successes)
        if failures < s.bruteforce_min_failures or ratio < s.bruteforce_min_failure_ratio:
            return []
        if failures < s.bruteforce_min_failures_per_user * len(st.users):
            return []  # one failure per username: an enumeration, not guessing
        first_ts = st.first_ts if st.first_ts is not None else ts
        st.incident.open(first_ts, ts, failures)
        evidence = list(st.evidence)
        st.evidence.clear()
        return [
            self.source_alert(
                attacker,
                first_ts,
                ts,
                f"REGISTER brute force from {attacker}: {failures} auth failures within "
                f"{s.bruteforce_window_s:g} s ({len(st.users)} usernames)",
                details={
                    "failures": failures,
                    "successes": successes,
                    "failure_ratio": round(ratio, 3),
                    "distinct_users": len(st.users),
                    "registrar": event.src_ip,
                    "window_s": s.bruteforce_window_s,
                },
                evidence=evidence,
                source_ip=attacker,
            )
        ]
