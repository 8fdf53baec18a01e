"""What the UI's pure pieces read: a call's messages, streams and intervals.

Protocols, not classes, so the store's query results (``callqual.store.queries``) and the
plain dataclasses below both fit: the ladder, the text flow and the pcap export never
import the store, and tests can feed them messages taken straight from a capture.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class SipMessageLike(Protocol):
    """One stored SIP message, as the ladder and the pcap export need it."""

    @property
    def id(self) -> int: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def frame(self) -> int: ...
    @property
    def src_ip(self) -> str: ...
    @property
    def src_port(self) -> int: ...
    @property
    def dst_ip(self) -> str: ...
    @property
    def dst_port(self) -> int: ...
    @property
    def transport(self) -> str: ...
    @property
    def method(self) -> str | None: ...
    @property
    def status_code(self) -> int | None: ...
    @property
    def retransmission(self) -> bool: ...
    @property
    def first_line(self) -> str: ...
    @property
    def raw(self) -> bytes: ...


class StreamLike(Protocol):
    """One RTP stream of a call, drawn as a bar under the ladder."""

    @property
    def ssrc(self) -> int: ...
    @property
    def src_ip(self) -> str: ...
    @property
    def src_port(self) -> int: ...
    @property
    def dst_ip(self) -> str: ...
    @property
    def dst_port(self) -> int: ...
    @property
    def codec(self) -> str | None: ...
    @property
    def packets(self) -> int: ...
    @property
    def lost(self) -> int: ...
    @property
    def mos(self) -> float | None: ...


class IntervalLike(Protocol):
    """One periodic report of a stream: what the quality chart plots."""

    @property
    def stream_id(self) -> int: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def interval_loss_ratio(self) -> float: ...
    @property
    def mean_jitter_ms(self) -> float: ...
    @property
    def mos(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class SipMessage:
    id: int
    ts: datetime
    frame: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str
    method: str | None
    status_code: int | None
    retransmission: bool
    first_line: str
    raw: bytes
    cseq: str | None = None


@dataclass(frozen=True, slots=True)
class Stream:
    ssrc: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    codec: str | None
    packets: int
    lost: int
    mos: float | None
    mean_jitter_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Interval:
    stream_id: int
    ts: datetime
    interval_loss_ratio: float
    mean_jitter_ms: float
    mos: float | None


@dataclass(frozen=True, slots=True)
class CallFlow:
    """A call as its ladder needs it: messages in time order, then its streams."""

    call_id: str
    messages: Sequence[SipMessageLike]
    streams: Sequence[StreamLike] = field(default_factory=tuple)
