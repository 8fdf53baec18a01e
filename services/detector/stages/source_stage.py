"""The detector's source stage: the per-source rules over the ``sources`` topic.

The call stage forwards each observation (a SIP message or malformed-SIP event, relayed
copies left out) to the ``sources`` partitions of the keys it concerns
(:mod:`source_routing`), with the collector's ``(clock, seq)`` and the ``events`` partition
it came from (its *origin*), and forwards the collector's markers per origin to every
``sources`` partition. Here each (sources partition, origin) pair is a lane of one
:class:`PartitionMerge`, so observations are applied in emission order once every origin
has shown a later position: the order ``callqual analyze`` sees them in. A call-stage member
replaying after a crash re-sends what it had sent; a lane drops what is not after its last
position, so a replay changes nothing.

Commits keep a horizon of capture time: a restarted member replays that much and rebuilds
the rules' windows from it, so an incident younger than the horizon gets the same alert id.

The call stage's finished calls come along the observations, and are judged here
(:mod:`call_judgement`): the marks their category depends on are this stage's.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping

from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.source_routing import alert_key, partition_of
from callqual.detector.stages.call_judgement import (
    CallJoins,
    CallVerdict,
    FinishedCall,
    FinishedCalls,
    route,
)
from callqual.detector.suspicion import AT_END_OF_INPUT, account_keys
from callqual.schemas import Alert, CallRecord, MalformedSipEvent, SipMessageEvent
from callqual.transport.ordering import Marker, Position
from callqual.transport.partition_merge import PartitionMerge

Observation = SipMessageEvent | MalformedSipEvent


class SourceStage:
    """Merges the lanes of the assigned ``sources`` partitions and runs the per-source rules."""

    def __init__(
        self,
        rules: RuleSettings,
        *,
        partitions: int,
        origins: int,
        emit: Callable[[Alert], None],
        horizon_s: float,
        max_pending: int = 1_000_000,
        publish_call: Callable[[CallRecord], None] = lambda record: None,
        send_verdict: Callable[[int, CallVerdict], None] = lambda partition, verdict: None,
    ) -> None:
        self.rules = rules
        self.partitions = partitions
        self.origins = origins
        self.horizon_s = horizon_s
        self._emit = emit
        self._max_pending = max_pending
        self._send_verdict = send_verdict
        self.joins = CallJoins(publish_call, max_pending)
        #: Calls still open at the end of the input: judged when every lane has ended
        self._at_end: list[tuple[int, int, float, FinishedCall]] = []
        self.merge: PartitionMerge[Observation | FinishedCalls] = PartitionMerge(max_pending)
        self.engine = RuleEngine(rules)
        self._owned: set[int] = set()
        #: lane -> the last position applied or skipped (replayed observations are not after it)
        self._last: dict[int, Position] = {}
        #: sources partition -> (clock, offset) of applied observations within the horizon
        self._recent: dict[int, deque[tuple[float, int]]] = {}
        self._clock = float("-inf")
        #: The last position applied: an observation sent to several of this member's
        #: partitions (its source's and its destination's...) comes out of the merge once per
        #: partition, back to back; it is applied once.
        self._applied: Position | None = None
        self.counters: Counter[str] = Counter()

    def lane(self, partition: int, origin: int) -> int:
        return partition * self.origins + origin

    # -- assignment -------------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._owned.add(p)
            self._recent.setdefault(p, deque())
            self.merge.assign(self.lane(p, o) for o in range(self.origins))

    def clear(self) -> None:
        """A rebalance: all state goes; the kept partitions replay from their commits."""
        self._owned.clear()
        self._last.clear()
        self._recent.clear()
        self.merge.clear()
        self.joins.clear()
        self._at_end.clear()
        self.engine = RuleEngine(self.rules)
        self._clock = float("-inf")
        self._applied = None

    # -- input ------------------------------------------------------------------

    def push(self, partition: int, origin: int, offset: int, position: Position, obs: Observation) -> None:
        lane = self.lane(partition, origin)
        last = self._last.get(lane)
        if last is not None and position <= last:
            self.counters["replayed"] += 1
            self.merge.push(lane, offset, None, None)  # taken in order, never applied
            return
        self._last[lane] = position
        self.merge.push(lane, offset, position, obs)

    def push_marker(self, partition: int, origin: int, offset: int, kind: Marker, position: Position) -> None:
        self.merge.push_marker(self.lane(partition, origin), offset, kind, position)

    def push_calls(
        self, partition: int, origin: int, offset: int, position: Position, calls: FinishedCalls
    ) -> None:
        """Finished calls, judged in order among the observations (never dropped as a replay: a
        successor of a call-stage member may finish a call at another point than it would have)."""
        self.merge.push(self.lane(partition, origin), offset, position, calls)

    def push_verdict(self, partition: int, offset: int, verdict: CallVerdict) -> None:
        """An account owner's verdict on a call whose home is ``partition``."""
        if partition in self._owned:
            self.joins.verdict(partition, offset, verdict)

    # -- applying ---------------------------------------------------------------

    def apply_ready(self, force: bool = False) -> int:
        applied = 0
        for ready in self.merge.pop_ready(force):
            partition = ready.partition // self.origins
            obs = ready.payload
            if isinstance(obs, FinishedCalls):
                self._judge_batch(partition, ready.offset, ready.position[0], obs)
                continue
            if self._applied is not None and ready.position <= self._applied:
                # Already applied through another partition, but this partition's keys depend on
                # it too: a takeover of this partition alone must replay it.
                self.counters["same_observation"] += 1
                self._recent[partition].append((ready.position[0], ready.offset))
                continue
            self._applied = ready.position
            alerts = (
                self.engine.on_sip(obs)
                if isinstance(obs, SipMessageEvent)
                else self.engine.on_malformed_event(obs)
            )
            self._publish(alerts)
            self._clock = max(self._clock, ready.position[0])
            self._recent[partition].append((ready.position[0], ready.offset))
            applied += 1
        self.joins.expire(self._clock)
        if self.merge.all_ended():
            for partition, offset, clock, call in self._at_end:
                self._judge(partition, offset, clock, call.record, AT_END_OF_INPUT)
            self._at_end.clear()
            self.joins.drop_unmatched_at_end()
            self._publish(self.engine.flush())
            self.engine = RuleEngine(self.rules)
            self.merge.start_next_run()
            self._last.clear()
            self._applied = None
            self.counters["runs_finished"] += 1
        return applied

    def _judge_batch(self, partition: int, offset: int, clock: float, batch: FinishedCalls) -> None:
        for call in batch.calls:
            if call.due_ts is None:
                self._at_end.append((partition, offset, clock, call))
            else:
                self._judge(partition, offset, clock, call.record, call.due_ts)

    def _judge(self, partition: int, offset: int, clock: float, record: CallRecord, as_of: float) -> None:
        """The call's keys this partition owns, as of ``as_of``: a verdict for its home, or the join."""
        r = route(record, self.partitions)
        marks = self.engine.marks
        if partition == r.account:
            suspicious = bool(marks.naming(record, as_of, account_keys(record)))
            at_end = as_of == AT_END_OF_INPUT
            verdict = CallVerdict(call_id=record.call_id, suspicious=suspicious, clock=clock, at_end=at_end)
            self._send_verdict(r.home, verdict)
        if partition == r.home:
            suspicious = bool(marks.naming(record, as_of, r.home_keys))
            wait = r.account is not None
            self.joins.home(partition, offset, clock, record, suspicious=suspicious, wait=wait)

    def _publish(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            if partition_of(alert_key(alert), self.partitions) in self._owned:
                self._emit(alert)
            else:
                self.counters["not_owned"] += 1

    # -- offsets ----------------------------------------------------------------

    def commit_positions(self) -> Mapping[int, int]:
        """Per ``sources`` partition: the safe offset of its lanes, held back by the horizon."""
        by_lane = self.merge.commit_positions()
        out: dict[int, int] = {}
        for p in self._owned:
            lanes = [by_lane[lane] for o in range(self.origins) if (lane := self.lane(p, o)) in by_lane]
            if not lanes:
                continue
            recent = self._recent[p]
            while recent and recent[0][0] < self._clock - self.horizon_s:
                recent.popleft()
            # Lanes interleave in a partition, so what was applied first is not the lowest offset.
            out[p] = min([*lanes, *(offset for _, offset in recent)])
        held = self.joins.holds()
        for p, offset, _, _ in self._at_end:
            held[p] = min(held.get(p, offset), offset)
        for p, offset in held.items():
            if p in out:
                out[p] = min(out[p], offset)
        return out
