"""Group members over the in-process bus: the collector service publishes a capture onto a
partitioned bus, and a replayable source hands its partitions to a :class:`DetectorService`
in an arbitrary fetch interleaving, as a Kafka consumer would."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.service import CollectorService, CollectorServiceSettings
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
