"""Collector events onto the ``events`` topic: keyed by call, with ordering headers, never blocking.

An event that cannot be encoded, or that the bus refuses, and a frame the
collector's code failed on, are counted and written to the dead-letter topic
with what identifies them; markers tell the detector how far the capture got
on every partition (see the package docstring for the wire contract).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel

from callqual.collector.frame_guard import FrameFailure
from callqual.schemas import AnyEvent, MalformedSipEvent, RtcpEvent, RtpStreamReport, SipMessageEvent
from callqual.transport.base import MessageRefusedError, PartitionedSink, SinkStats
from callqual.transport.codec import UnserialisableError, encode
from callqual.transport.ordering import Marker, event_headers, marker_headers

log = logging.getLogger("callqual.collector.service")


def event_key(event: AnyEvent) -> str:
    """The partitioning key: the Call-ID whenever the event has one.

    Media without a call (heuristic RTP, SDP never seen) is keyed by its
    stream so its interval and final reports stay in order; malformed SIP by
    its source, which is what the rules that read it aggregate on.
    """
    if isinstance(event, SipMessageEvent):
        return event.call_id
    if isinstance(event, RtpStreamReport):
        if event.call_id:
            return event.call_id
        return f"rtp:{event.src_ip}:{event.src_port}>{event.dst_ip}:{event.dst_port}/{event.ssrc}"
    if isinstance(event, RtcpEvent):
        if event.call_id:
            return event.call_id
        return f"rtcp:{event.src_ip}:{event.src_port}>{event.dst_ip}:{event.dst_port}"
    if isinstance(event, MalformedSipEvent):
        return f"malformed:{event.src_ip}"
    raise TypeError(f"not a collector event: {type(event).__name__}")  # pragma: no cover


@dataclass
class PublishCounts:
    """What the publisher adds to its sink's counters."""

    markers: int = 0
    #: Events that could not be encoded or were refused by the bus, written to dead letters
    dead_lettered: int = 0
    #: Frames the collector's code failed on (counted as internal.* errors), written to dead letters
    frames_dead_lettered: int = 0


class UnpublishedEvent(BaseModel):
    """An event the collector could not publish, as written to the dead-letter topic.

    Compact on purpose: the event may have been refused for its size, so only its
    head travels, with the frame that produced it and why.
    """

    kind: Literal["collector_unpublished"] = "collector_unpublished"
    #: ``collector.unserialisable`` or ``collector.too_large``
    reason: str
    error: str
    event_kind: str
    frame: int | None
    key: str
    excerpt: str


class FailedFrame(BaseModel):
    """A frame the collector's code failed on, as written to the dead-letter topic: enough to replay it."""

    kind: Literal["collector_frame_failed"] = "collector_frame_failed"
    #: ``internal.<ExceptionType>``, as counted in callqual_parse_errors_total{reason}
    reason: str
    error: str
    #: the frame number (for a chunk the collector had to feed again frame by frame: its first)
    frame: int
    ts: float
    linktype: int
    records: int
    #: the captured bytes in hex, at most _FAILED_FRAME_BYTES of them
    data_hex: str
    cut: bool


#: Bytes of a failed frame kept in its dead letter (a jumbo frame fits; the producer's limit is far above)
_FAILED_FRAME_BYTES = 9216


class EventPublisher:
    """Publishes collector events with the ordering headers; never blocks the capture loop."""

    def __init__(self, sink: PartitionedSink, topic: str, run_id: str, deadletter: str | None = None) -> None:
        self.sink = sink
        self.topic = topic
        self.deadletter = deadletter
        #: Events dead-lettered, by reason (exported as parse_errors{reason})
        self.unpublished: Counter[str] = Counter()
        self.partitions = sink.partitions(topic)
        self.run = run_id.encode()
        self.counts = PublishCounts()
        self.seq = 0
        self.clock = float("-inf")

    @property
    def stats(self) -> SinkStats:
        return self.sink.stats

    def publish(self, event: AnyEvent, clock: float | None) -> None:
        if clock is not None and clock > self.clock:
            self.clock = clock
        seq = self.seq
        self.seq = seq + 1
        try:
            value = encode(event)
            self.sink.send(
                self.topic,
                value,
                key=event_key(event),
                headers=event_headers(seq, self.clock, self.run),
            )
        except UnserialisableError as exc:
            self._dead_letter(event, "collector.unserialisable", exc, repr(event))
        except MessageRefusedError as exc:
            self._dead_letter(event, f"collector.{exc.reason}", exc, value[:2000].decode(errors="replace"))

    def _dead_letter(self, event: AnyEvent, reason: str, exc: Exception, excerpt: str) -> None:
        """Count an event that cannot be published and write what identifies it to dead letters."""
        self.unpublished[reason] += 1
        self.counts.dead_lettered += 1
        frame = getattr(event, "frame", None)
        if frame is None:
            frame = getattr(event, "first_frame", None)
        log.warning("event not publishable, dead-lettered", extra={"reason": reason, "frame": frame})
        if self.deadletter is None:
            return
        letter = UnpublishedEvent(
            reason=reason,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            event_kind=event.kind,
            frame=frame,
            key=event_key(event)[:1000],
            excerpt=excerpt[:2000],
        )
        try:
            self.sink.send(self.deadletter, encode(letter))
        except (MessageRefusedError, UnserialisableError):
            self.sink.stats.dropped += 1

    def frame_failed(self, failure: FrameFailure) -> None:
        """Write a frame the collector failed on to dead letters (it is counted in the collector's errors)."""
        self.counts.frames_dead_lettered += 1
        if self.deadletter is None:
            return
        letter = FailedFrame(
            reason=failure.reason,
            error=failure.error,
            frame=failure.frame,
            ts=failure.ts,
            linktype=failure.linktype,
            records=failure.records,
            data_hex=failure.data[:_FAILED_FRAME_BYTES].hex(),
            cut=len(failure.data) > _FAILED_FRAME_BYTES,
        )
        try:
            self.sink.send(self.deadletter, encode(letter))
        except (MessageRefusedError, UnserialisableError):
            self.sink.stats.dropped += 1

    def marker(self, kind: Marker) -> None:
        """A ``watermark`` or ``end`` marker on every partition (not counted as events).

        Markers are progress information, not data: one refused by a full
        queue is simply skipped, the next one supersedes it.
        """
        value = json.dumps({"kind": kind.value, "clock": self.clock, "seq": self.seq}).encode()
        headers = marker_headers(kind, self.seq, self.clock, self.run)
        for partition in range(self.partitions):
            if self.sink.send(self.topic, value, headers=headers, partition=partition, progress=True):
                self.counts.markers += 1
        self.sink.service()

    def service(self) -> None:
        self.sink.service()

    def summary(self) -> dict[str, Any]:
        """The counters for a log line."""
        return {
            **asdict(self.sink.stats),
            **asdict(self.counts),
            "events": self.seq,
            "in_queue": self.sink.in_flight(),
            "lost": self.sink.stats.lost,
        }
