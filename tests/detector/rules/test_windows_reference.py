"""The source rules' windows behave exactly as the plain versions they replaced (issue 14).

``SourceTable`` skips its expiry while no entry can be old enough, and ``SlidingCounter``
keeps its total as buckets come and go; the plain versions (an expiry look at the oldest
entry on every touch, a sum over the buckets on every question) are the references here,
driven by random events with capture time stepping back now and then.
"""

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from callqual.detector.rules.windows import SlidingCounter, SourceTable


class _PlainTable:
    """The table as it was before issue 14."""

    def __init__(self, max_size: int, idle_s: float) -> None:
        self.max_size = max(1, max_size)
        self.idle_s = idle_s
        self._items: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self.evicted = 0
        self.expired = 0
        self._now = float("-inf")

    def get(self, key: str) -> Any:
        item = self._items.get(key)
        return item[0] if item is not None else None

    def touch(self, key: str, ts: float, factory: Callable[[], Any]) -> Any:
        self.expire(ts)
        item = self._items.get(key)
        if item is None:
            state = factory()
            if len(self._items) >= self.max_size:
                self._items.popitem(last=False)
                self.evicted += 1
        else:
            state = item[0]
            self._items.move_to_end(key)
        self._items[key] = (state, max(ts, item[1]) if item is not None else ts)
        return state

    def put(self, key: str, ts: float, state: Any) -> None:
        self.touch(key, ts, lambda: state)
        self._items[key] = (state, self._items[key][1])

    def expire(self, now: float) -> None:
        self._now = max(self._now, now)
        cutoff = self._now - self.idle_s
        while self._items:
            key, (_, last) = next(iter(self._items.items()))
            if last >= cutoff:
                break
            del self._items[key]
            self.expired += 1

    def items(self) -> list[tuple[str, Any]]:
        return [(k, v[0]) for k, v in self._items.items()]

    def pop(self, key: str) -> Any:
        item = self._items.pop(key, None)
        return item[0] if item is not None else None

    def clear(self) -> None:
        self._items.clear()


class _PlainCounter:
    def __init__(self, window_s: float, buckets: int = 10) -> None:
        self._n = max(1, buckets)
        self._len = max(window_s / self._n, 1e-9)
        self._buckets: deque[list[int]] = deque()

    def _trim(self, idx: int) -> None:
        while self._buckets and self._buckets[0][0] <= idx - self._n:
            self._buckets.popleft()

    def add(self, ts: float, n: int = 1) -> int:
        idx = int(ts // self._len)
        self._trim(idx)
        if self._buckets and self._buckets[-1][0] >= idx:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([idx, n])
        return self.total(ts)

    def total(self, ts: float) -> int:
        idx = int(ts // self._len)
        self._trim(idx)
        return sum(c for _, c in self._buckets)


#: time steps: mostly forward and short against idle_s 10, sometimes past it, sometimes back
_steps = st.sampled_from((0.0, 0.1, 0.5, 1.0, 2.0, 3.0, 9.9, 10.0, 10.1, 25.0, -0.3, -2.0, -11.0))
_table_op = st.tuples(
    st.sampled_from(("touch", "touch", "touch", "get", "pop", "put", "expire", "clear")),
    st.integers(0, 6),
    _steps,
)


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(_table_op, min_size=5, max_size=150), max_size=st.integers(1, 5))
def test_the_source_table_keeps_evicts_and_expires_as_the_plain_one(
    ops: list[tuple[str, int, float]], max_size: int
) -> None:
    fast: SourceTable[int] = SourceTable(max_size, 10.0)
    plain = _PlainTable(max_size, 10.0)
    ts = 1_000.0
    for i, (op, k, step) in enumerate(ops):
        ts += step
        key = f"k{k}"
        if op == "touch":
            assert fast.touch(key, ts, lambda i=i: i) == plain.touch(key, ts, lambda i=i: i)
        elif op == "get":
            assert fast.get(key) == plain.get(key)
        elif op == "pop":
            assert fast.pop(key) == plain.pop(key)
        elif op == "put":
            fast.put(key, ts, -i)
            plain.put(key, ts, -i)
        elif op == "expire":
            fast.expire(ts)
            plain.expire(ts)
        else:
            fast.clear()
            plain.clear()
        assert fast.items() == plain.items()
        assert (fast.evicted, fast.expired) == (plain.evicted, plain.expired)


_counter_op = st.tuples(
    st.booleans(), st.sampled_from((0.0, 0.05, 0.3, 1.0, 2.5, 6.0, 11.0, -0.2, -1.5)), st.integers(1, 3)
)


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(_counter_op, min_size=5, max_size=150), buckets=st.integers(1, 12))
def test_the_sliding_counter_counts_as_the_plain_one(
    ops: list[tuple[bool, float, int]], buckets: int
) -> None:
    fast, plain = SlidingCounter(10.0, buckets), _PlainCounter(10.0, buckets)
    ts = 1_000.0
    for add, step, n in ops:
        ts += step
        if add:
            assert fast.add(ts, n) == plain.add(ts, n)
        else:
            assert fast.total(ts) == plain.total(ts)
