"""An in-process message bus, so the whole pipeline can run embedded in one process.

It stands in for Kafka in ``callqual analyze`` on a pcap, in single-process
deployments and in tests. Values are serialised to the same JSON bytes as on
Kafka, so the embedded pipeline exercises the consumers' decoding path too and a
schema mismatch cannot hide until the distributed deployment.

Semantics, deliberately close to one Kafka consumer group:

- one bounded FIFO per topic; all sources of a bus share it (each message is
  read once, like partitions shared within a group);
- order is total per topic, hence also per key;
- when a topic's queue is full, ``emit`` drops the new message and counts it,
  instead of blocking the producer (a live capture cannot be paused);
- ``ack`` is a no-op: the queue dies with the process, so there is nothing to
  replay after a restart;
- messages carry a partition number (the key's hash over ``partitions``, or the
  one asked for) and headers, as on Kafka, so code that merges partitions can be
  tested here; the order stays the total order of publication.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable

from pydantic import BaseModel

from callqual.transport.base import Headers, Message, SinkStats
from callqual.transport.codec import encode

DEFAULT_MAX_MESSAGES_PER_TOPIC = 10_000


class InProcessBus:
    """Bounded per-topic queues shared by any number of sinks and sources (thread-safe)."""

    def __init__(
        self, max_messages_per_topic: int = DEFAULT_MAX_MESSAGES_PER_TOPIC, partitions: int = 1
    ) -> None:
        if max_messages_per_topic < 1:
            raise ValueError("max_messages_per_topic must be at least 1")
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.max_messages_per_topic = max_messages_per_topic
        self.partitions = partitions
        self._queues: dict[str, deque[Message]] = {}
        #: Offsets count per partition, as on Kafka
        self._next_offset: dict[tuple[str, int], int] = {}
        self._emitted: dict[str, int] = {}
        self._dropped: dict[str, int] = {}
        # One condition for the whole bus: a source waiting on several topics
        # must wake when any of them gets a message.
        self._cond = threading.Condition()

    # -- producing ---------------------------------------------------------

    def publish(
        self,
        topic: str,
        key: str | None,
        value: bytes,
        *,
        headers: Headers = (),
        partition: int | None = None,
    ) -> bool:
        """Append a raw message; return ``False`` (and count a drop) if the topic is full."""
        if partition is None:
            partition = zlib.crc32(key.encode()) % self.partitions if key is not None else 0
        elif not 0 <= partition < self.partitions:
            raise ValueError(f"no partition {partition} (the bus has {self.partitions})")
        with self._cond:
            queue = self._queues.setdefault(topic, deque())
            if len(queue) >= self.max_messages_per_topic:
                self._dropped[topic] = self._dropped.get(topic, 0) + 1
                return False
            offset = self._next_offset.get((topic, partition), 0)
            self._next_offset[topic, partition] = offset + 1
            self._emitted[topic] = self._emitted.get(topic, 0) + 1
            queue.append(
                Message(
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    key=key,
                    value=value,
                    timestamp_ms=time.time_ns() // 1_000_000,
                    headers=tuple(headers),
                )
            )
            self._cond.notify_all()
            return True

    def sink(self) -> InProcessSink:
        return InProcessSink(self)

    # -- consuming ---------------------------------------------------------

    def take(self, topics: Iterable[str], timeout: float, start: int = 0) -> Message | None:
        """Pop the oldest message of the first non-empty topic, rotating from ``start``.

        Rotation keeps a busy topic from starving the others for a source that
        reads several.
        """
        names = list(topics)
        if not names:
            raise ValueError("take() needs at least one topic")
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                for i in range(len(names)):
                    queue = self._queues.get(names[(start + i) % len(names)])
                    if queue:
                        return queue.popleft()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def source(self, topics: Iterable[str]) -> InProcessSource:
        return InProcessSource(self, topics)

    # -- accounting --------------------------------------------------------

    def depth(self, topic: str) -> int:
        with self._cond:
            return len(self._queues.get(topic, ()))

    def emitted(self, topic: str) -> int:
        with self._cond:
            return self._emitted.get(topic, 0)

    def dropped(self, topic: str | None = None) -> int:
        """Drops for one topic, or for all topics when ``topic`` is ``None``."""
        with self._cond:
            if topic is None:
                return sum(self._dropped.values())
            return self._dropped.get(topic, 0)


class InProcessSink:
    """:class:`~callqual.transport.base.PartitionedSink` onto an :class:`InProcessBus`."""

    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus
        self.stats = SinkStats()

    def emit(self, topic: str, key: str | None, value: BaseModel) -> None:
        self.send(topic, encode(value), key=key)

    def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: str | None = None,
        headers: Headers = (),
        partition: int | None = None,
        progress: bool = False,
    ) -> bool:
        # Delivery is the append itself: what is not dropped is delivered.
        if not self.bus.publish(topic, key, value, headers=headers, partition=partition):
            self.stats.dropped += 0 if progress else 1
            return False
        if not progress:
            self.stats.emitted += 1
            self.stats.delivered += 1
        return True

    def partitions(self, topic: str) -> int:
        return self.bus.partitions

    def in_flight(self) -> int:
        return 0

    def service(self) -> None:
        return None

    def flush(self, timeout: float) -> int:
        return 0

    def close(self, timeout: float = 0.0) -> int:
        return 0


class InProcessSource:
    """:class:`~callqual.transport.base.EventSource` reading some topics of an :class:`InProcessBus`."""

    def __init__(self, bus: InProcessBus, topics: Iterable[str]) -> None:
        self.bus = bus
        self.topics = tuple(topics)
        if not self.topics:
            raise ValueError("a source needs at least one topic")
        self._next = 0
        self._closed = False

    def poll(self, timeout: float) -> Message | None:
        if self._closed:
            raise RuntimeError("poll() on a closed source")
        message = self.bus.take(self.topics, timeout, self._next)
        if message is not None:
            # Start after the topic just served, so each topic gets its turn.
            self._next = (self.topics.index(message.topic) + 1) % len(self.topics)
        return message

    def ack(self, message: Message) -> None:
        # Nothing to persist: the bus lives and dies with the process.
        return None

    def close(self) -> None:
        self._closed = True
