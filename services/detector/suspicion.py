"""The security marks a finished call is judged against, kept with when they were raised.

A call is ``suspicious`` when the latest security alert naming one of its keys (its Call-ID,
its caller IP, its account for toll fraud) overlaps it, *as of its due time*: the capture time
its timer ran out (``CallContext.due_ts``), not the moment an expiry scan happened to find it.
The scan's schedule depends on which events a process sees, so with several detector members
it differs from member to member; the due time is the call's own. Each key therefore keeps its
last few marks with the capture time of the message that raised them, and a late judgement (a
member whose partitions were quiet, the source stage) sees what ``callqual analyze`` saw.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from callqual.detector.rules.base import uri_user
from callqual.schemas import Alert, CallRecord

#: Marks kept per key: far more than one key raises within one call's lateness
MARKS_PER_KEY = 32


def mark_keys(alert: Alert) -> list[str]:
    """The keys a security alert marks: its call, and its account (toll fraud) or its source.

    Toll fraud often comes through a PBX shared by honest users: it marks the account, not
    the PBX's address.
    """
    keys: list[str] = []
    if alert.call_id is not None:
        keys.append(f"call:{alert.call_id}")
    account = alert.details.get("account")
    if alert.rule == "toll_fraud" and isinstance(account, str):
        keys.append(f"account:{account}")
    elif alert.source_ip is not None:
        keys.append(f"ip:{alert.source_ip}")
    return keys


def ip_key(record: CallRecord) -> str | None:
    return f"ip:{record.caller_ip}" if record.caller_ip else None


def account_keys(record: CallRecord) -> list[str]:
    """The call's own key and its account's: toll fraud marks both, from the account's traffic."""
    account = uri_user(record.from_uri)
    return [f"call:{record.call_id}", *([f"account:{account}"] if account else [])]


def call_keys(record: CallRecord) -> list[str]:
    """Every key whose marks may make ``record`` suspicious."""
    ip = ip_key(record)
    return [*account_keys(record), *([ip] if ip else [])]


class SuspicionMarks:
    """Per key, the last :data:`MARKS_PER_KEY` security alerts with their raising capture time.

    Bounded in keys (least recently marked go first, counted in ``evictions``).
    """

    def __init__(self, max_keys: int, ttl_s: float) -> None:
        self.max_keys = max(1, max_keys)
        self.ttl_s = ttl_s
        self._marks: OrderedDict[str, deque[tuple[float, Alert]]] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._marks)

    def put(self, alert: Alert, raised_ts: float) -> None:
        for key in mark_keys(alert):
            marks = self._marks.get(key)
            if marks is None:
                if len(self._marks) >= self.max_keys:
                    self._marks.popitem(last=False)
                    self.evictions += 1
                marks = self._marks[key] = deque(maxlen=MARKS_PER_KEY)
            else:
                self._marks.move_to_end(key)
            marks.append((raised_ts, alert))

    def latest(self, key: str, as_of: float) -> Alert | None:
        """The key's last mark raised by a message at or before ``as_of``."""
        for raised, alert in reversed(self._marks.get(key, ())):
            if raised <= as_of:
                return alert
        return None

    def naming(self, record: CallRecord, as_of: float, keys: list[str] | None = None) -> list[Alert]:
        """The marks on ``keys`` (default: all the call's) that overlap the call, as of ``as_of``.

        A mark overlaps when its incident began before the call ended and the call began
        within ``ttl_s`` of the incident's last message.
        """
        end = record.end_ts if record.end_ts is not None else record.start_ts
        out: list[Alert] = []
        for key in call_keys(record) if keys is None else keys:
            a = self.latest(key, as_of)
            if a is not None and end >= a.first_ts and record.start_ts <= a.last_ts + self.ttl_s:
                out.append(a)
        return out

    def clear(self) -> None:
        self._marks.clear()


#: The due time of a call still open when the input ended: judged against every mark so far
AT_END_OF_INPUT = math.inf
