"""Group members over the in-process bus: the collector service publishes a capture onto a
partitioned bus, and a replayable source hands its partitions to a :class:`DetectorService`
in an arbitrary fetch interleaving, as a Kafka consumer would."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.service import CollectorService, CollectorServiceSettings
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.service import DetectorService, DetectorServiceSettings
from callqual.detector.stages.source_service import SourceStageService
from callqual.schemas import Alert, CallRecord
from callqual.transport import InProcessBus, Message
from callqual.transport.base import Rebalance


def publish_capture(pcap: Path, partitions: int, topic_prefix: str = "t.") -> dict[int, list[Message]]:
    """The collector service's messages for ``pcap`` (events and markers), per partition, in order."""
    bus = InProcessBus(max_messages_per_topic=10_000_000, partitions=partitions)
    service = CollectorService(
        CollectorServiceSettings(pcap=pcap, topic_prefix=topic_prefix), sink=bus.sink()
    )
    service.connect()
    with open_capture(pcap) as capture:
        assert service.run(capture) == 0
    log: dict[int, list[Message]] = {p: [] for p in range(partitions)}
    while (m := bus.take([f"{topic_prefix}events"], 0)) is not None:
        log[m.partition].append(m)
    return log


class ReplaySource:
    """A :class:`~callqual.transport.base.PartitionedSource` over a retained log, like a topic.

    Fetches come from a random partition each time (seeded), so members see their partitions
    interleaved as a real consumer may; ``start`` is where a previous member committed; reading
    stops after ``stop_after`` messages, as a member SIGKILLed mid-stream would.
    """

    def __init__(
        self,
        log: Mapping[int, list[Message]],
        on_assign: Rebalance,
        on_revoke: Rebalance,
        *,
        seed: int,
        start: Mapping[int, int] | None = None,
        stop_after: int | None = None,
        topic: str = "t.events",
    ) -> None:
        self.topic = topic
        self._log = log
        self._next = {p: (start or {}).get(p, 0) for p in log}
        self._rng = random.Random(seed)
        self._on_assign = on_assign
        self._assigned = False
        self._left = stop_after
        self.stored: dict[int, int] = dict(start or {})
        self.committed: dict[int, int] = dict(start or {})

    def poll_batch(self, max_messages: int, timeout: float) -> list[Message]:
        if not self._assigned:
            self._assigned = True
            self._on_assign(sorted(self._log))
        out: list[Message] = []
        open_parts = [p for p in self._log if self._next[p] < len(self._log[p])]
        while open_parts and len(out) < max_messages and self._left != 0:
            p = self._rng.choice(open_parts)
            n = min(self._rng.randint(1, 40), len(self._log[p]) - self._next[p])
            if self._left is not None:
                n = min(n, self._left)
                self._left -= n
            out.extend(self._log[p][self._next[p] : self._next[p] + n])
            self._next[p] += n
            open_parts = [p for p in self._log if self._next[p] < len(self._log[p])]
        return out

    def store(self, positions: Mapping[int, int], *, commit: bool = False) -> None:
        self.stored.update(positions)
        if commit:
            self.committed.update(positions)

    def lag(self) -> int | None:
        return sum(len(msgs) - self._next[p] for p, msgs in self._log.items())

    def close(self) -> None:
        # Closing a Kafka consumer commits what was stored.
        self.committed.update(self.stored)


PARTITIONS = 6
SETTINGS = DetectorServiceSettings(topic_prefix="t.", exit_when_idle_s=0.2, idle_flush_s=0.1)


def _shares(members: int) -> list[list[int]]:
    return [[p for p in range(PARTITIONS) if p % members == i] for i in range(members)]


def _drain(bus: InProcessBus, topic: str) -> dict[int, list[Message]]:
    log: dict[int, list[Message]] = {p: [] for p in range(PARTITIONS)}
    while (m := bus.take([topic], 0)) is not None:
        log[m.partition].append(m)
    return log


def _alert_ids(bus: InProcessBus) -> tuple[set[str], list[str]]:
    ids = [Alert.model_validate_json(m.value).alert_id for m in _drain(bus, "t.alerts").values() for m in m]
    return set(ids), ids


def _call_stage(log: dict[int, list[Message]], bus: InProcessBus, members: int, *, kill: bool) -> None:
    """The call-stage members side by side (a batch each in turn), as concurrent processes would be.

    With ``kill``, the first member stops after half of its input, having checkpointed only in
    its first third, and a successor takes its partitions over from the stored offsets.
    """
    running: list[tuple[DetectorService, ReplaySource]] = []
    for i, share in enumerate(_shares(members)):
        part = {p: log[p] for p in share}
        member = DetectorService(SETTINGS, RuleSettings(), bus.sink())
        total = sum(len(m) for m in part.values())
        source = ReplaySource(
            part,
            member.on_assign,
            member.on_revoke,
            seed=i,
            stop_after=total // 2 if kill and i == 0 else None,
        )
        member.attach(source)
        running.append((member, source))
    killed = running[0][0] if kill else None
    read = 0
    while running:
        for member, source in list(running):
            batch = source.poll_batch(50, 0)
            for message in batch:
                member.receive(message)
            member.apply_ready()
            if member is killed:
                read += len(batch)
                if read < sum(len(m) for m in source._log.values()) // 3:
                    assert member.checkpoint()
            if batch:
                continue
            running.remove((member, source))
            if member is killed:
                assert source.stored, "the killed member had stored no offsets"
                successor = DetectorService(SETTINGS, RuleSettings(), bus.sink())
                replay = ReplaySource(
                    source._log, successor.on_assign, successor.on_revoke, seed=99, start=source.stored
                )
                successor.attach(replay)
                running.append((successor, replay))
            else:
                member.apply_ready(force=True)
                assert member.checkpoint(commit=True)


def _kill_mid_stream(
    member: DetectorService | SourceStageService, log: dict[int, list[Message]], seed: int
) -> dict[int, int]:
    """Read half, checkpoint after a third, then vanish (no final checkpoint): as SIGKILL.

    Returns the offsets it had stored, where its successor starts.
    """
    total = sum(len(m) for m in log.values())
    source = ReplaySource(log, member.on_assign, member.on_revoke, seed=seed, stop_after=total // 2)
    member.attach(source)
    read = 0
    while batch := source.poll_batch(50, 0):
        for message in batch:
            member.receive(message)
        member.apply_ready()
        read += len(batch)
        if read < total // 3:
            assert member.checkpoint()
    assert source.stored
    return dict(source.stored)


def _source_stage(bus: InProcessBus, members: int, *, kill: bool) -> None:
    """The source-stage members side by side, a batch each in turn, reading ``sources`` as it grows.

    It grows because a call's account owner sends its verdict to the call's home partition
    through ``sources``. With ``kill``, the first member stops after half of the call stage's
    output, having checkpointed only in its first third; a successor resumes from its offsets.
    """
    log = _drain(bus, "t.sources")
    total = sum(len(m) for m in log.values())
    running: list[tuple[SourceStageService, ReplaySource]] = []
    for i, share in enumerate(_shares(members)):
        member = SourceStageService(SETTINGS, RuleSettings(), bus.sink())
        part = {p: log[p] for p in share}  # the same lists: new messages show
        doomed = kill and i == 0
        source = ReplaySource(
            part, member.on_assign, member.on_revoke, seed=100 + i, stop_after=total // 2 if doomed else None
        )
        member.attach(source)
        running.append((member, source))
    killed = running[0][0] if kill else None
    read = 0
    quiet = 0
    while quiet < 2:
        progressed = False
        for member, source in list(running):
            batch = source.poll_batch(50, 0)
            for message in batch:
                member.receive(message)
            member.apply_ready()
            progressed = progressed or bool(batch)
            if member is killed:
                read += len(batch)
                if read < total // 3:
                    assert member.checkpoint()
                if not batch:
                    assert source.stored, "the killed member had stored no offsets"
                    running.remove((member, source))
                    successor = SourceStageService(SETTINGS, RuleSettings(), bus.sink())
                    replay = ReplaySource(
                        source._log, successor.on_assign, successor.on_revoke, seed=99, start=source.stored
                    )
                    successor.attach(replay)
                    running.append((successor, replay))
                    progressed = True
        for p, messages in _drain(bus, "t.sources").items():
            log[p].extend(messages)
            progressed = progressed or bool(messages)
        quiet = 0 if progressed else quiet + 1
    for member, _ in running:
        assert member.checkpoint(commit=True)


def two_stage_alert_ids(
    log: dict[int, list[Message]], calls: int, sources: int, *, kill: bool = False
) -> list[str]:
    """Every alert id the two stages published (duplicates kept), ``calls`` and ``sources`` members."""
    bus = InProcessBus(max_messages_per_topic=10_000_000, partitions=PARTITIONS)
    _call_stage(log, bus, calls, kill=kill)
    _source_stage(bus, sources, kill=kill)
    alerts = [Alert.model_validate_json(m.value) for ms in _drain(bus, "t.alerts").values() for m in ms]
    LAST_ALERTS[:] = alerts
    LAST_CALLS[:] = [
        CallRecord.model_validate_json(m.value) for ms in _drain(bus, "t.calls").values() for m in ms
    ]
    return [a.alert_id for a in alerts]


#: The alerts of the last :func:`two_stage_alert_ids` run, for a failing test to describe
LAST_ALERTS: list[Alert] = []
#: The call records of the last :func:`two_stage_alert_ids` run (duplicates kept)
LAST_CALLS: list[CallRecord] = []


def categories(records: list[CallRecord]) -> dict[str, str]:
    """Each call's category; a call published twice (a replay) must have the same both times."""
    out: dict[str, str] = {}
    for r in records:
        assert out.setdefault(r.call_id, r.category) == r.category, f"{r.call_id}: two categories"
    return out
