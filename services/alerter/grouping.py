"""Grouping, de-duplication and rate limiting of alerts into notifications.

Pure: the caller passes the time (``now``, any monotonic seconds). The model
is Alertmanager's, because operators know it:

- alerts of one *group* (same rule and severity) that arrive within
  ``group_wait`` of the first are sent together, as one notification;
- once a group has been notified, later alerts of it are collected and sent
  as one summary every ``group_interval``, never one by one;
- a group with nothing new for a whole ``group_interval`` is forgotten;
- an alert id already seen is ignored: the detector's ids are deterministic
  and Kafka delivers at least once, so a replay must not notify twice;
- a token bucket caps notifications per minute across all groups; a group
  that finds the bucket empty keeps collecting and goes out when a token is
  back, so rate limiting delays and merges, it never loses.

An INVITE flood that makes ten thousand ``call_failed`` alerts therefore
becomes one notification ("10000 call_failed alerts from 1 source ...") with a
sample of the alerts in full, and memory stays bounded: each group keeps a
fixed-size sample and bounded distinct-counters, and the number of groups is
bounded by the (closed) set of rules times severities.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from callqual.alerter.notification import DEFAULT_SAMPLE_SIZE, Notification, notification_id
from callqual.schemas import Alert

#: Distinct sources/calls are counted exactly up to this many per group, then saturate
_DISTINCT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class GroupingPolicy:
    group_wait_s: float = 10.0
    group_interval_s: float = 300.0
    sample_size: int = DEFAULT_SAMPLE_SIZE
    #: Notifications per minute over all groups (token bucket; the burst is the same number)
    max_per_minute: float = 20.0
    #: Alert ids remembered for de-duplication
    dedup_capacity: int = 100_000
    #: Groups tracked at once; past it the new group's alerts are counted as dropped
    max_groups: int = 1_000

    def __post_init__(self) -> None:
        if self.group_wait_s < 0 or self.group_interval_s <= 0:
            raise ValueError("group_wait_s must be >= 0 and group_interval_s > 0")
        if self.sample_size < 1 or self.max_per_minute <= 0:
            raise ValueError("sample_size must be >= 1 and max_per_minute > 0")


@dataclass(slots=True)
class _Group:
    key: str
    rule: str
    severity: str
    #: When the pending alerts may go out (None: nothing pending)
    due_at: float | None
    last_sent: float | None = None
    count: int = 0
    sample: list[Alert] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    first_ts: float = 0.0
    last_ts: float = 0.0
    #: Order-independent digest of the pending alert ids (sum of hashes mod 2**128)
    digest: int = 0

    def reset(self) -> None:
        self.count = 0
        self.sample = []
        self.sources = set()
        self.calls = set()
        self.digest = 0
        self.due_at = None


def group_key(alert: Alert) -> str:
    return f"{alert.rule}/{alert.severity}"


class Grouper:
    """Turns a stream of alerts into a bounded stream of notifications."""

    def __init__(self, policy: GroupingPolicy | None = None) -> None:
        self.policy = policy or GroupingPolicy()
        self._groups: dict[str, _Group] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tokens = self.policy.max_per_minute
        self._tokens_at: float | None = None
        #: Alerts sent as part of a multi-alert notification (instead of alone)
        self.grouped = 0
        self.duplicates = 0
        #: Alerts refused because ``max_groups`` groups were already open
        self.dropped = 0

    def add(self, alert: Alert, now: float) -> bool:
        """Take one alert; ``False`` if it was a duplicate or could not be kept."""
        if alert.alert_id in self._seen:
            self._seen.move_to_end(alert.alert_id)
            self.duplicates += 1
            return False
        key = group_key(alert)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= self.policy.max_groups:
                self.dropped += 1
                return False
            group = _Group(key, alert.rule, alert.severity, due_at=None)
            self._groups[key] = group
        self._remember(alert.alert_id)
        if group.count == 0:
            group.first_ts = alert.first_ts
            group.last_ts = alert.last_ts
            if group.last_sent is None:
                group.due_at = now + self.policy.group_wait_s
            else:
                group.due_at = max(now, group.last_sent + self.policy.group_interval_s)
        group.count += 1
        group.first_ts = min(group.first_ts, alert.first_ts)
        group.last_ts = max(group.last_ts, alert.last_ts)
        if len(group.sample) < self.policy.sample_size:
            group.sample.append(alert)
        if alert.source_ip and len(group.sources) < _DISTINCT_LIMIT:
            group.sources.add(alert.source_ip)
        if alert.call_id and len(group.calls) < _DISTINCT_LIMIT:
            group.calls.add(alert.call_id)
        h = int.from_bytes(hashlib.sha256(alert.alert_id.encode()).digest()[:16], "big")
        group.digest = (group.digest + h) % (1 << 128)
        return True

    def _remember(self, alert_id: str) -> None:
        self._seen[alert_id] = None
        if len(self._seen) > self.policy.dedup_capacity:
            self._seen.popitem(last=False)

    def _refill(self, now: float) -> None:
        if self._tokens_at is not None:
            rate = self.policy.max_per_minute / 60.0
            self._tokens = min(self.policy.max_per_minute, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now

    def due(self, now: float) -> list[Notification]:
        """Notifications whose time has come (oldest group first), within the rate limit."""
        self._refill(now)
        out: list[Notification] = []
        ready = sorted(
            (g for g in self._groups.values() if g.due_at is not None and g.due_at <= now),
            key=lambda g: (g.due_at, g.key),
        )
        for group in ready:
            if self._tokens < 1.0:
                break
            self._tokens -= 1.0
            out.append(self._emit(group))
            group.last_sent = now
            group.reset()
        # Forget groups that stayed quiet for a whole interval after their last notification.
        for key in [
            k
            for k, g in self._groups.items()
            if g.count == 0 and g.last_sent is not None and now - g.last_sent >= self.policy.group_interval_s
        ]:
            del self._groups[key]
        return out

    def _emit(self, group: _Group) -> Notification:
        if group.count > 1:
            self.grouped += group.count
        return Notification(
            # A single alert keeps an id derived from its own; a group's id covers all its alerts.
            notification_id=(
                f"{group.digest:032x}"
                if group.count > 1
                else notification_id(group.key, [group.sample[0].alert_id])
            ),
            group_key=group.key,
            rule=group.rule,
            severity=group.severity,
            count=group.count,
            alerts=tuple(group.sample),
            first_ts=group.first_ts,
            last_ts=group.last_ts,
            distinct_sources=len(group.sources),
            distinct_calls=len(group.calls),
        )

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`due` may next return something (for the caller's poll timeout)."""
        pending = [g.due_at for g in self._groups.values() if g.due_at is not None]
        if not pending:
            return None
        earliest = min(pending)
        if self._tokens < 1.0:
            wait = (1.0 - self._tokens) / (self.policy.max_per_minute / 60.0)
            earliest = max(earliest, now + wait)
        return earliest

    def pending(self) -> int:
        """Alerts waiting in groups, not yet in a notification."""
        return sum(g.count for g in self._groups.values())

    def flush(self, now: float) -> list[Notification]:
        """Everything pending now, ignoring waits and the rate limit (for shutdown)."""
        out = [self._emit(g) for g in sorted(self._groups.values(), key=lambda g: g.key) if g.count]
        for g in self._groups.values():
            if g.count:
                g.last_sent = now
                g.reset()
        return out
