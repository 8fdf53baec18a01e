"""toll_fraud: an account (From user) behaves like a compromised one.

Three signs, each its own incident per account:

* ``premium_destination``: a call to a configured high-risk international
  or premium prefix (revenue-share fraud pays the attacker per minute);
* ``concurrent_calls``: more simultaneous calls that are *up* than one
  account plausibly places (fraud runs many parallel calls to maximise
  minutes). Up means answered, or ringing for ``toll_fraud_ring_min_s``:
  attempts refused within milliseconds (a flood answered 486) cost nothing
  and are ``sip_flood``'s business. Counted when the 18x/2xx is seen, so a
  span that sees only one direction of the signalling never fires it;
* ``call_spike``: calls up in the current bucket far above the account's own
  EWMA baseline, once enough history exists to have a baseline (refused
  attempts, again, are not calls).

Accounts are keyed on the From user part only: hosts vary (IP vs domain)
for one account. Alerts name the triggering call and its source.
"""

from collections import OrderedDict
from dataclasses import dataclass, field

from callqual.detector.rules.base import SourceRule, uri_user
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.rules.windows import Incident, SourceTable
from callqual.schemas import Alert, SipMessageEvent

_SEPARATORS = str.maketrans("", "", "-. ()")
#: Empty buckets folded into the baseline at most (beyond this the EWMA is ~0 anyway).
_MAX_GAP_BUCKETS = 64
#: Call-ids remembered per account for de-duplicating authenticated retries.
_MAX_RECENT = 64


@dataclass(init=False, slots=True)
class _Call:
    """One INVITE dialog of an account: who placed it, and whether it is up yet."""

    invite_ts: float
    src_ip: str
    ringing_ts: float | None = None
    answered: bool = False
    #: already counted in the account's per-bucket call baseline
    counted: bool = False

    def __init__(
        self,
        invite_ts: float,
        src_ip: str,
        ringing_ts: float | None = None,
        answered: bool = False,
        counted: bool = False,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.invite_ts = invite_ts
        self.src_ip = src_ip
        self.ringing_ts = ringing_ts
        self.answered = answered
        self.counted = counted

    def up(self, now: float, ring_min_s: float) -> bool:
        return self.answered or (self.ringing_ts is not None and now - self.ringing_ts >= ring_min_s)


@dataclass(init=False, slots=True)
class _Account:
    #: the account's incident per sign, made when first needed (most accounts never need one)
    incidents: dict[str, Incident] = field(default_factory=dict)
    #: open call-id -> its call, oldest INVITE first
    calls: OrderedDict[str, _Call] = field(default_factory=OrderedDict)
    #: recently counted call-ids, so an authenticated retry (same Call-ID after
    #: a 401/407 ended the first attempt) is not counted twice in the baseline
    recent: OrderedDict[str, None] = field(default_factory=OrderedDict)
    bucket: int | None = None
    bucket_calls: int = 0
    baseline: float = 0.0
    history: int = 0

    def __init__(  # noqa: PLR0917 - the dataclass's fields, in order
        self,
        incidents: dict[str, Incident] | None = None,
        calls: OrderedDict[str, _Call] | None = None,
        recent: OrderedDict[str, None] | None = None,
        bucket: int | None = None,
        bucket_calls: int = 0,
        baseline: float = 0.0,
        history: int = 0,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.incidents = {} if incidents is None else incidents
        self.calls = OrderedDict() if calls is None else calls
        self.recent = OrderedDict() if recent is None else recent
        self.bucket = bucket
        self.bucket_calls = bucket_calls
        self.baseline = baseline
        self.history = history


class TollFraud(SourceRule):
    id = "toll_fraud"
    severity = "critical"

    def __init__(self, settings: RuleSettings) -> None:
        super().__init__(settings)
        s = settings
        # An account's baseline spans several buckets: keep it at least that long.
        idle = max(
            s.source_idle_s,
            s.toll_fraud_call_max_age_s,
            s.toll_fraud_bucket_s * (s.toll_fraud_min_history + 2),
        )
        self._table: SourceTable[_Account] = SourceTable(s.max_sources, idle)
        self._prefixes = tuple(
            sorted(
                {ac + d for ac in s.toll_fraud_access_codes for d in s.toll_fraud_destinations}
                | set(s.toll_fraud_prefixes)
            )
        )
        #: Per-account bound on tracked calls: well above the alert threshold.
        self._max_calls = max(4 * s.toll_fraud_max_concurrent, 64)
        self.calls_dropped = 0

    def _incident(self, st: _Account, trigger: str) -> Incident:
        """The account's incident of one sign (issue 14: three were made with every new account)."""
        incident = st.incidents.get(trigger)
        if incident is None:
            incident = st.incidents[trigger] = Incident(self.settings.incident_quiet_s)
        return incident

    def premium_prefix(self, dialled: str | None) -> str | None:
        if not dialled:
            return None
        number = dialled.translate(_SEPARATORS)
        if not number.startswith(self._prefixes):  # one C call; nearly every number matches none
            return None
        return next((p for p in self._prefixes if number.startswith(p)), None)

    def observe(self, event: SipMessageEvent) -> list[Alert]:
        if event.is_request:  # each field read once: a read on an event is a generic lookup
            method = event.method
            if method == "INVITE" and event.to_tag is None:
                return self._on_invite(event)
            if method in ("BYE", "CANCEL"):
                self._end(event, uri_user(event.from_uri), uri_user(event.to_uri))
        elif event.cseq_method == "INVITE":
            code = event.status_code or 0
            if code >= 300:
                self._end(event, uri_user(event.from_uri))
            elif code >= 180:
                return self._on_progress(event, answered=code >= 200)
        return []

    def _on_progress(self, event: SipMessageEvent, *, answered: bool) -> list[Alert]:
        """A 18x or 2xx to an account's INVITE: the call may now be up."""
        account = uri_user(event.from_uri)
        st = self._table.get(account) if account else None
        call = st.calls.get(event.call_id) if st is not None else None
        if st is None or call is None or account is None:
            return []
        if answered:
            call.answered = True
        elif call.ringing_ts is None:
            call.ringing_ts = event.ts
        return self._on_up(st, account, event, call.src_ip)

    def _on_up(self, st: _Account, account: str, event: SipMessageEvent, src_ip: str) -> list[Alert]:
        """Count the calls up now (each once, into the baseline), then test concurrency and spike."""
        s, ts = self.settings, event.ts
        up: list[_Call] = []
        for call_id, call in st.calls.items():
            if not call.up(ts, s.toll_fraud_ring_min_s):
                continue
            up.append(call)
            if not call.counted:
                call.counted = True
                if call_id not in st.recent:
                    st.recent[call_id] = None
                    if len(st.recent) > _MAX_RECENT:
                        st.recent.popitem(last=False)
                    self._count_bucket(st, ts)
        alerts: list[Alert] = []
        if len(up) > s.toll_fraud_max_concurrent and not self._incident(st, "concurrent_calls").active(ts):
            alerts.append(
                self._fire(
                    st,
                    "concurrent_calls",
                    account,
                    event,
                    summary=f"account {account} has {len(up)} concurrent calls up",
                    details={"concurrent_calls": len(up), "threshold": s.toll_fraud_max_concurrent},
                    first_ts=min(c.invite_ts for c in up),
                    source_ip=src_ip,
                )
            )
        n = st.bucket_calls
        if (
            st.history >= s.toll_fraud_min_history
            and n >= s.toll_fraud_spike_min_calls
            and n >= s.toll_fraud_spike_factor * st.baseline
            and not self._incident(st, "call_spike").active(ts)
        ):
            bucket_start = (st.bucket or 0) * s.toll_fraud_bucket_s
            alerts.append(
                self._fire(
                    st,
                    "call_spike",
                    account,
                    event,
                    summary=f"account {account}: {n} calls this period vs baseline {st.baseline:.1f}",
                    details={
                        "calls": n,
                        "baseline": round(st.baseline, 3),
                        "factor": s.toll_fraud_spike_factor,
                        "bucket_s": s.toll_fraud_bucket_s,
                    },
                    first_ts=bucket_start,
                    source_ip=src_ip,
                )
            )
        return alerts

    def _end(self, event: SipMessageEvent, *accounts: str | None) -> None:
        for account in accounts:
            st = self._table.get(account) if account else None
            if st is not None:
                st.calls.pop(event.call_id, None)

    def _on_invite(self, event: SipMessageEvent) -> list[Alert]:
        account = uri_user(event.from_uri)
        if account is None:
            return []
        s, ts = self.settings, event.ts
        st = self._table.touch(account, ts, _Account)
        if event.call_id in st.calls:
            return []  # retransmission or authenticated retry of a call already counted
        cutoff = ts - s.toll_fraud_call_max_age_s
        while st.calls and next(iter(st.calls.values())).invite_ts < cutoff:
            st.calls.popitem(last=False)
        st.calls[event.call_id] = _Call(ts, event.src_ip)
        if len(st.calls) > self._max_calls:
            st.calls.popitem(last=False)
            self.calls_dropped += 1
        alerts: list[Alert] = []
        dialled = uri_user(event.request_uri) or uri_user(event.to_uri)
        prefix = self.premium_prefix(dialled)
        if prefix is not None and not self._incident(st, "premium_destination").active(ts):
            alerts.append(
                self._fire(
                    st,
                    "premium_destination",
                    account,
                    event,
                    summary=f"account {account} called high-risk destination {dialled} (prefix {prefix})",
                    details={"dialled": dialled, "prefix": prefix},
                )
            )
        # Ringing calls may have rung long enough by now.
        alerts.extend(self._on_up(st, account, event, event.src_ip))
        return alerts

    def _count_bucket(self, st: _Account, ts: float) -> None:
        s = self.settings
        bucket = int(ts // s.toll_fraud_bucket_s)
        if st.bucket is None:
            st.bucket = bucket
        elif bucket > st.bucket:
            a = s.toll_fraud_ewma_alpha
            st.baseline = (
                a * st.bucket_calls + (1 - a) * st.baseline if st.history else float(st.bucket_calls)
            )
            st.history += 1
            gap = min(bucket - st.bucket - 1, _MAX_GAP_BUCKETS)
            st.baseline *= (1 - a) ** gap
            st.history += gap
            st.bucket, st.bucket_calls = bucket, 0
        st.bucket_calls += 1

    def _fire(
        self,
        st: _Account,
        trigger: str,
        account: str,
        event: SipMessageEvent,
        *,
        summary: str,
        details: dict[str, float | int | str | None],
        first_ts: float | None = None,
        source_ip: str | None = None,
    ) -> Alert:
        ts = event.ts
        start = min(first_ts, ts) if first_ts is not None else ts
        self._incident(st, trigger).open(start, ts, 1)
        return self.source_alert(
            account,
            start,
            ts,
            summary,
            details={"trigger": trigger, "account": account, **details},
            evidence=[event],
            source_ip=source_ip or event.src_ip,
            call_id=event.call_id,
            id_parts=(trigger,),
        )

    @property
    def evictions(self) -> int:
        return self._table.evictions + self.calls_dropped
