"""Bounded, capture-time state for the per-source rules.

Memory must not grow with the number of attackers: a /16 sweep or spoofed
flood can present millions of source addresses. Every table here has a
hard size and forgets keys by capture time, and counts what it forgot.
"""

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")


class SourceTable(Generic[S]):
    """An LRU map key -> state, bounded in size and expired by capture time.

    Order is by last touch, so expiry only inspects the oldest entries:
    amortised O(1) per event. ``_floor`` is never above the oldest last-seen
    time in the table, so while the cutoff has not passed it expiry has
    nothing to look at (issue 14: it looked at the oldest entry on every message).
    """

    def __init__(self, max_size: int, idle_s: float) -> None:
        self.max_size = max(1, max_size)
        self.idle_s = idle_s
        self._items: OrderedDict[str, tuple[S, float]] = OrderedDict()
        self.evicted = 0  # dropped because the table was full
        self.expired = 0  # dropped because idle for idle_s
        self._now = float("-inf")
        #: at most every entry's last-seen time (exactly the oldest's when ``_in_order``)
        self._floor = float("inf")
        #: last-seen times rise from the oldest entry to the newest (capture time did not step back)
        self._in_order = True
        self._newest = float("-inf")

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    @property
    def evictions(self) -> int:
        return self.evicted + self.expired

    def get(self, key: str) -> S | None:
        item = self._items.get(key)
        return item[0] if item is not None else None

    def touch(self, key: str, ts: float, factory: Callable[[], S]) -> S:
        """Return the key's state (created if needed) and mark it seen at ``ts``."""
        self.expire(ts)
        items = self._items
        item = items.get(key)
        if item is None:
            state = factory()
            if len(items) >= self.max_size:
                items.popitem(last=False)
                self.evicted += 1
            last = ts
        else:
            state = item[0]
            items.move_to_end(key)
            last = max(ts, item[1])
        items[key] = (state, last)
        if last < self._newest:
            self._in_order = False
        self._newest = last
        self._floor = min(self._floor, last)
        return state

    def put(self, key: str, ts: float, state: S) -> None:
        """Set the key's state (replacing any) and mark it seen at ``ts``."""
        self.touch(key, ts, lambda: state)
        self._items[key] = (state, self._items[key][1])

    def expire(self, now: float) -> None:
        # Capture time can step back slightly (multi-interface captures); expire
        # against the latest time seen, never against an older one.
        self._now = max(self._now, now)
        cutoff = self._now - self.idle_s
        if self._floor >= cutoff:
            return  # no entry is older than the cutoff
        items = self._items
        while items:
            key, (_, last) = next(iter(items.items()))
            if last >= cutoff:
                if self._in_order:
                    self._floor = last
                return
            del items[key]
            self.expired += 1
        self._forget_order()

    def items(self) -> list[tuple[str, S]]:
        return [(k, v[0]) for k, v in self._items.items()]

    def pop(self, key: str) -> S | None:
        item = self._items.pop(key, None)
        return item[0] if item is not None else None

    def clear(self) -> None:
        self._items.clear()
        self._forget_order()

    def _forget_order(self) -> None:
        """The table is empty: no entry to be older than anything."""
        self._floor = float("inf")
        self._in_order = True
        self._newest = float("-inf")


class SlidingCounter:
    """Count of events over the last ``window_s`` seconds, in ``buckets`` sub-buckets.

    Approximates a true sliding window to within one bucket (window/buckets)
    with O(buckets) memory, whatever the event rate. The total is kept as
    buckets come and go, not summed on every question (issue 14).
    """

    __slots__ = ("_buckets", "_len", "_n", "_total")

    def __init__(self, window_s: float, buckets: int = 10) -> None:
        self._n = max(1, buckets)
        self._len = max(window_s / self._n, 1e-9)
        self._buckets: deque[list[int]] = deque()  # [bucket index, count]
        self._total = 0

    def _trim(self, idx: int) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] <= idx - self._n:
            self._total -= buckets.popleft()[1]

    def add(self, ts: float, n: int = 1) -> int:
        """Count ``n`` events at ``ts`` and return the total in the window ending at ``ts``."""
        idx = int(ts // self._len)
        self._trim(idx)
        if self._buckets and self._buckets[-1][0] >= idx:
            # Same bucket, or a slightly out-of-order event: fold into the newest bucket.
            self._buckets[-1][1] += n
        else:
            self._buckets.append([idx, n])
        self._total += n
        return self._total

    def total(self, ts: float) -> int:
        self._trim(int(ts // self._len))
        return self._total


@dataclass(init=False, slots=True)
class Incident:
    """Suppresses repeat alerts for one key while its activity continues."""

    quiet_s: float
    first_ts: float | None = None
    last_ts: float = float("-inf")
    alerted: bool = False
    events: int = 0

    def __init__(
        self,
        quiet_s: float,
        first_ts: float | None = None,
        last_ts: float = float("-inf"),
        alerted: bool = False,
        events: int = 0,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.quiet_s = quiet_s
        self.first_ts = first_ts
        self.last_ts = last_ts
        self.alerted = alerted
        self.events = events

    def active(self, ts: float) -> bool:
        """True while an alerted incident is still going (activity within ``quiet_s``)."""
        if not self.alerted:
            return False
        if ts - self.last_ts > self.quiet_s:
            self.alerted = False
            self.first_ts = None
            self.events = 0
            return False
        self.last_ts = max(self.last_ts, ts)
        self.events += 1
        return True

    def open(self, first_ts: float, ts: float, events: int) -> None:
        self.alerted = True
        self.first_ts = first_ts
        self.last_ts = ts
        self.events = events
