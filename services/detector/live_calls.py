"""Calls still up, as the collector's interval reports show them: the state mid-call rules judge.

The collector reports every live stream once per report interval (10 s), all streams of one
tick back to back, and a call whose media flows one way only every 2 s. A call is judged once
the whole batch is in (the detector flushes on the next event that is not an interval report,
or a watermark), never half-way through it: a stream whose report of this tick is still to
come would look silent. Bounded like the call table: entries go when their call finishes.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from callqual.schemas import StreamRecord

StreamKey = tuple[int, str, int, str, int]

#: Quality "over the last interval" spans at least this much capture time (the collector's tick),
#: so a call reported every 2 s (one way quiet) is not judged on 2 s of packets: one lost burst
#: would be a loss alert. The base report is the newest one a tick or more before, less a second
#: of tick phase.
QUALITY_WINDOW_S = 10.0
_TICK_SLACK_S = 1.0
#: Earlier reports kept per stream: 2 s probes fill a 10 s window with 5
_HISTORY = 8


@dataclass(frozen=True, slots=True)
class StreamInterval:
    """A stream's latest report and what changed over its last interval(s) (or since its start)."""

    stream: StreamRecord
    expected: int
    lost: int
    #: capture time the interval began: an earlier report's last packet, or the stream's first
    since_ts: float
    #: packets received in the interval, and their mean RFC 3550 jitter
    packets: int = 0
    mean_jitter_ms: float = 0.0


class _Counts(NamedTuple):
    """A stream's cumulative counts at one report."""

    last_ts: float
    expected: int
    lost: int
    packets: int
    #: mean jitter times packets: the sum the next interval's mean is taken from
    jitter_total_ms: float


def _counts(s: StreamRecord) -> _Counts:
    return _Counts(s.last_ts, s.expected, _lost(s), s.packets, s.mean_jitter_ms * s.packets)


@dataclass(init=False, slots=True)
class _LiveStream:
    latest: StreamRecord
    #: the stream's earlier reports, oldest first
    before: deque[_Counts] = field(default_factory=lambda: deque(maxlen=_HISTORY))

    def __init__(
        self,
        latest: StreamRecord,
        before: deque[_Counts] | None = None,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.latest = latest
        self.before = deque(maxlen=_HISTORY) if before is None else before

    def base(self) -> _Counts | None:
        """The report the judged interval starts from: the newest a window back, None for the start."""
        limit = self.latest.last_ts - (QUALITY_WINDOW_S - _TICK_SLACK_S)
        for counts in reversed(self.before):
            if counts.last_ts <= limit:
                return counts
        full = len(self.before) == self.before.maxlen
        return self.before[0] if full else None

    def interval(self) -> StreamInterval:
        latest, base = self.latest, self.base()
        if base is None:
            base = _Counts(latest.first_ts, 0, 0, 0, 0.0)
        packets = latest.packets - base.packets
        jitter = (
            (latest.mean_jitter_ms * latest.packets - base.jitter_total_ms) / packets if packets > 0 else 0.0
        )
        return StreamInterval(
            latest,
            latest.expected - base.expected,
            _lost(latest) - base.lost,
            base.last_ts,
            max(0, packets),
            max(0.0, jitter),
        )


@dataclass(init=False, slots=True)
class _LiveCall:
    streams: dict[StreamKey, _LiveStream] = field(default_factory=dict)
    #: keys reported since the call was last judged
    fresh: set[StreamKey] = field(default_factory=set)

    def __init__(
        self,
        streams: dict[StreamKey, _LiveStream] | None = None,
        fresh: set[StreamKey] | None = None,
    ) -> None:
        # Written out: mypyc leaves a dataclass's generated __init__ interpreted.
        self.streams = {} if streams is None else streams
        self.fresh = set() if fresh is None else fresh


def _key(s: StreamRecord) -> StreamKey:
    return (s.ssrc, s.src_ip, s.src_port, s.dst_ip, s.dst_port)


def _lost(s: StreamRecord) -> int:
    """RFC 3550 loss when the collector kept it (robust to wraps and duplicates), else Wireshark's."""
    return s.lost_rfc3550 if s.lost_rfc3550 is not None else max(0, s.lost)


class LiveCalls:
    """Interval reports per open call, and which calls have news to judge."""

    def __init__(self, max_calls: int) -> None:
        self._calls: dict[str, _LiveCall] = {}
        self._pending: dict[str, None] = {}
        self.max_calls = max_calls
        self.dropped = 0
        #: The latest packet time of any report in the current batch: just before the collector's
        #: tick, when every stream with a packet in the last interval reported, of any call.
        self.batch_tick = float("-inf")
        self._batch_open = False

    def __len__(self) -> int:
        return len(self._calls)

    def on_report(self, call_id: str, stream: StreamRecord) -> None:
        self.note_tick(stream.last_ts)
        call = self._calls.get(call_id)
        if call is None:
            if len(self._calls) >= self.max_calls:
                self.dropped += 1
                return
            call = self._calls[call_id] = _LiveCall()
        key = _key(stream)
        seen = call.streams.get(key)
        if seen is None:
            call.streams[key] = _LiveStream(stream)
        else:
            seen.before.append(_counts(seen.latest))
            seen.latest = stream
        call.fresh.add(key)
        self._pending[call_id] = None

    def on_final(self, stream: StreamRecord) -> None:
        """A stream ended: its final record now belongs to the call itself, not to the live view."""
        call = self._calls.get(stream.call_id or "")
        if call is not None:
            call.streams.pop(_key(stream), None)
            call.fresh.discard(_key(stream))

    def note_tick(self, ts: float) -> None:
        """A report of a stream no open call owns: still proof that the collector ticked."""
        self.batch_tick = max(self.batch_tick, ts)
        self._batch_open = True

    def has_reports(self, call_id: str) -> bool:
        return call_id in self._calls

    def streams(self, call_id: str) -> list[StreamRecord]:
        call = self._calls.get(call_id)
        return [] if call is None else [s.latest for s in call.streams.values()]

    def take_pending(self) -> list[str]:
        """Calls with reports since they were last judged (each once), oldest news first."""
        out = list(self._pending)
        self._pending.clear()
        self._batch_open = False
        return out

    @property
    def has_pending(self) -> bool:
        """A batch of reports (of any stream) came since the last judgement."""
        return self._batch_open

    def intervals(self, call_id: str) -> list[StreamInterval]:
        """The freshly reported streams' last intervals (see ``QUALITY_WINDOW_S``); consumes the freshness."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        out = [s.interval() for key, s in call.streams.items() if key in call.fresh]
        call.fresh.clear()
        return out

    def forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)
        self._pending.pop(call_id, None)
