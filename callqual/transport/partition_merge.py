"""Merge several partitions back into emission order, and say which offsets are safe to commit.

Pure (no Kafka): fed ``(partition, offset, headers)`` of each received message, it
yields payloads in the ``(clock, seq)`` order the producer emitted them. A head is
released once every other assigned partition has shown a later position (an event
or a watermark), so one member reading six partitions applies what one reader of
one partition would. Offsets: a restart must resume where nothing after it is still
needed, i.e. at the first unapplied message or the oldest message of a key still
held (an open call), whichever comes first.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from callqual.transport.ordering import END_POSITION, START_POSITION, Marker, Position

T = TypeVar("T")


class Ready(NamedTuple, Generic[T]):
    """A message released by the merge, in emission order."""

    partition: int
    offset: int
    payload: T
    position: Position


@dataclass(slots=True)
class _Item(Generic[T]):
    offset: int
    position: Position
    payload: T | None  # None: a marker, or a message to skip (dead-lettered)
    marker: Marker | None = None


@dataclass
class _Partition(Generic[T]):
    pending: deque[_Item[T]] = field(default_factory=deque)
    #: Every later message of this partition is positioned after this
    progress: Position | None = None
    #: Offset of the last message taken off ``pending``
    last_done: int | None = None
    #: Key -> offset of its first message, for keys whose state is still in memory
    held: dict[str, int] = field(default_factory=dict)
    ended: bool = False


class PartitionMerge(Generic[T]):
    """K-way merge of assigned partitions by ``(clock, seq)``, with safe commit positions."""

    def __init__(
        self,
        max_pending: int = 1_000_000,
        on_marker: Callable[[int, Marker, Position], None] | None = None,
    ) -> None:
        self.max_pending = max_pending
        #: Told of each marker as it is passed, in merge order (a stage forwards them downstream)
        self._on_marker = on_marker
        self._parts: dict[int, _Partition[T]] = {}
        self._held_in: dict[str, int] = {}
        #: ``forced``: heads released past the bound because ``max_pending`` was exceeded
        self.counters: Counter[str] = Counter()

    # -- assignment -------------------------------------------------------------

    @property
    def partitions(self) -> list[int]:
        return sorted(self._parts)

    def assign(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._parts.setdefault(p, _Partition())

    def clear(self) -> None:
        """Forget every partition (a rebalance: the kept ones are replayed from their commits)."""
        self._parts.clear()
        self._held_in.clear()

    # -- input ------------------------------------------------------------------

    def push(self, partition: int, offset: int, position: Position | None, payload: T | None) -> bool:
        """Queue a message; ``position`` None keeps partition order. False: partition not assigned."""
        part = self._parts.get(partition)
        if part is None:
            return False
        pos = position if position is not None else (part.progress or START_POSITION)
        if part.progress is None or pos > part.progress:
            part.progress = pos
        part.pending.append(_Item(offset, pos, payload))
        return True

    def push_marker(self, partition: int, offset: int, kind: Marker, position: Position | None) -> bool:
        """A watermark (or end): no event of this partition will come before it."""
        part = self._parts.get(partition)
        if part is None:
            return False
        pos = END_POSITION if kind is Marker.END else position
        if pos is not None:
            # Later events have seq >= the marker's: a strict lower bound is seq - 1.
            bound = pos if pos == END_POSITION else (pos[0], pos[1] - 1)
            part.progress = bound if part.progress is None else max(part.progress, bound)
        part.pending.append(_Item(offset, part.progress or START_POSITION, None, kind))
        return True

    def pending(self) -> int:
        return sum(len(p.pending) for p in self._parts.values())

    # -- output -----------------------------------------------------------------

    def pop_ready(self, force: bool = False) -> Iterator[Ready[T]]:
        """Release, in ``(clock, seq)`` order, every message no partition can still precede.

        ``force`` releases everything queued (a silent partition must not stall the rest).
        """
        while True:
            best: int | None = None
            best_pos: Position | None = None
            bound: Position = END_POSITION
            for pid, part in self._parts.items():
                while part.pending and part.pending[0].payload is None:
                    self._take(part, pid)
                if part.pending:
                    head = part.pending[0].position
                    if best_pos is None or head < best_pos:
                        if best_pos is not None:
                            bound = min(bound, best_pos)
                        best, best_pos = pid, head
                    else:
                        bound = min(bound, head)
                else:
                    bound = min(bound, part.progress or START_POSITION)
            if best is None or best_pos is None:
                return
            if best_pos > bound and not force:
                if self.pending() <= self.max_pending:
                    return
                self.counters["forced"] += 1
            item = self._take(self._parts[best])
            if item.payload is not None:
                yield Ready(best, item.offset, item.payload, item.position)

    def _take(self, part: _Partition[T], pid: int | None = None) -> _Item[T]:
        item = part.pending.popleft()
        part.last_done = item.offset
        if item.marker is Marker.END:
            part.ended = True
        if item.marker is not None and self._on_marker is not None and pid is not None:
            self._on_marker(pid, item.marker, item.position)
        return item

    def low_marks(self) -> dict[int, Position]:
        """Per partition with known progress: a position no message still to be released is before.

        What a stage forwards downstream as its own watermark: the head still waiting, or just
        after the last position this partition showed.
        """
        out: dict[int, Position] = {}
        for pid, part in self._parts.items():
            if part.pending:
                out[pid] = part.pending[0].position
            elif part.progress is not None and part.progress < END_POSITION:
                out[pid] = (part.progress[0], part.progress[1] + 1)
        return out

    def frontier(self) -> Position | None:
        """The earliest position any partition may still release; None until each has shown one."""
        heads: list[Position] = []
        for part in self._parts.values():
            head = part.pending[0].position if part.pending else part.progress
            if head is None:
                return None
            heads.append(head)
        return min(heads) if heads else None

    def all_ended(self) -> bool:
        """Every assigned partition reached its end marker and nothing waits: the input is over."""
        parts = self._parts.values()
        return bool(self._parts) and all(p.ended and not p.pending for p in parts)

    def start_next_run(self) -> None:
        """After :meth:`all_ended`: the state is finished, a next capture may follow."""
        for part in self._parts.values():
            part.held.clear()
            part.ended = False
            part.progress = None
        self._held_in.clear()

    # -- offsets ----------------------------------------------------------------

    def hold(self, key: str, partition: int, offset: int) -> None:
        """State for ``key`` now depends on ``offset`` onwards: do not commit past it."""
        part = self._parts.get(partition)
        if part is not None and key not in part.held:
            part.held[key] = offset
            self._held_in[key] = partition

    def release(self, key: str) -> None:
        """``key``'s state was delivered: its messages are no longer needed."""
        p = self._held_in.pop(key, None)
        if p is not None and p in self._parts:
            self._parts[p].held.pop(key, None)

    def holds(self, key: str) -> bool:
        return key in self._held_in

    def commit_positions(self) -> Mapping[int, int]:
        """Per partition, the offset a restart must resume from (nothing before it is needed)."""
        out: dict[int, int] = {}
        for p, part in self._parts.items():
            if part.last_done is None:
                if part.pending:  # received, none taken yet: nothing of it may be skipped
                    out[p] = part.pending[0].offset
                continue
            candidates = [part.last_done + 1]
            if part.pending:
                candidates.append(part.pending[0].offset)
            if part.held:
                candidates.append(min(part.held.values()))
            out[p] = min(candidates)
        return out
