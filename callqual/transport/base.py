"""The transport seam: what the collector, detector and alerter see of a message bus.

The services are written against these two protocols only, so the same code
runs embedded in one process (:mod:`callqual.transport.inprocess`) or spread
over Kafka (:mod:`callqual.transport.kafka`), and pure logic never imports a
Kafka client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel


class TransportError(RuntimeError):
    """A transport failure the caller cannot retry its way out of (bad config, fatal client error)."""


class MessageRefusedError(TransportError):
    """The bus refused this one message (too large...); the sink itself is fine: dead-letter and go on."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        #: Short name of why, e.g. ``too_large``
        self.reason = reason


#: Message headers in the order they were written (a name may repeat)
Headers = tuple[tuple[str, bytes], ...]


@dataclass
class SinkStats:
    """Counters of a sink; ``emitted = delivered + failed + in flight``, ``dropped`` never left."""

    emitted: int = 0
    delivered: int = 0
    failed: int = 0
    #: Refused locally because the buffer was full (never sent)
    dropped: int = 0
    #: Errors of the connection, not of one message (broker down: retried by the client)
    broker_errors: int = 0
    last_error: str | None = None
    #: The client reported a fatal error: this sink can send nothing more
    fatal: bool = False

    @property
    def lost(self) -> int:
        """What the topic is missing of what was handed to the sink."""
        return self.dropped + self.failed


@dataclass(frozen=True, slots=True)
class Message:
    """One received message, with enough position to acknowledge it later.

    The value stays raw JSON bytes: each consumer knows which model a topic
    carries (``parse_event``, ``CallRecord.model_validate_json``...), and a
    message it cannot decode must still be acknowledgeable and dead-lettered.
    """

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    #: Producer or broker timestamp in ms since the epoch, when the transport has one
    timestamp_ms: int | None = None
    headers: Headers = ()


@runtime_checkable
class EventSink(Protocol):
    """Where a service publishes its output.

    ``emit`` never blocks on the network and never raises for back-pressure:
    a monitoring pipeline must keep up with live traffic, so when the local
    buffer is full the message is dropped and counted instead.
    """

    def emit(self, topic: str, key: str | None, value: BaseModel) -> None:
        """Queue ``value`` for ``topic``; ``key`` (the Call-ID) keeps one call's events in order."""
        ...

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for queued messages; return how many are still pending."""
        ...


@runtime_checkable
class EventSource(Protocol):
    """Where a service reads its input, with explicit acknowledgement.

    Delivery is at-least-once: a message is only acknowledged once the caller
    has applied it, so a crash between ``poll`` and ``ack`` replays it rather
    than losing it. Consumers must therefore tolerate duplicates.
    """

    def poll(self, timeout: float) -> Message | None:
        """Return the next message, or ``None`` if none arrived within ``timeout`` seconds."""
        ...

    def ack(self, message: Message) -> None:
        """Record that ``message`` (and everything before it on its partition) was applied."""
        ...

    def close(self) -> None:
        """Release the source, persisting acknowledged positions where the transport has any."""
        ...


@runtime_checkable
class PartitionedSink(EventSink, Protocol):
    """A sink that also writes raw bytes with headers to a chosen partition (the collector's events
    and markers), and tells how its delivery goes."""

    stats: SinkStats

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
        """Queue without blocking; False: dropped (buffer full, counted). Raises MessageRefusedError.

        ``progress``: a marker, not data; it is left out of the counters, and when lost the
        next one supersedes it.
        """
        ...

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (markers go to each)."""
        ...

    def in_flight(self) -> int:
        """Messages queued and not yet acknowledged by the bus."""
        ...

    def service(self) -> None:
        """Serve delivery reports without waiting."""
        ...

    def close(self, timeout: float) -> int:
        """Flush for up to ``timeout`` s, give up on the rest (counted as failed); return it."""
        ...


#: Called with partition numbers when the group hands partitions to this member or takes them away
Rebalance = Callable[[list[int]], None]


@runtime_checkable
class PartitionedSource(Protocol):
    """One topic read by a member of a group, with the positions to resume from chosen by the caller.

    The caller, not the source, decides which offset is safe to commit per partition
    (a detector holds a call's first event until the call is delivered), hence
    :meth:`store` instead of per-message acks. Assignment changes reach the
    ``on_assign`` / ``on_revoke`` callbacks given at construction, from within
    :meth:`poll_batch`.
    """

    topic: str

    def poll_batch(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` messages (in partition order), waiting at most ``timeout`` s."""
        ...

    def store(self, positions: Mapping[int, int], *, commit: bool = False) -> None:
        """Record, per partition, the next offset to read after a restart; ``commit`` now if asked."""
        ...

    def lag(self) -> int | None:
        """Messages between this member's positions and the end of its partitions (None: unknown)."""
        ...

    def close(self) -> None: ...
