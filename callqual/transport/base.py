"""The transport seam: what the collector, detector and alerter see of a message bus.

The services are written against these two protocols only, so the same code
runs embedded in one process (:mod:`callqual.transport.inprocess`) or spread
over Kafka (:mod:`callqual.transport.kafka`), and pure logic never imports a
Kafka client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel


class TransportError(RuntimeError):
    """A transport failure the caller cannot retry its way out of (bad config, fatal client error)."""


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
