"""What the store's queries return: frozen dataclasses, never ORM objects or live rows.

Each class lists the columns it reads; ``from_row`` builds it from a result mapping, so a
column added to a table shows up here only when a view asks for it.
"""

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Self

from sqlalchemy import RowMapping


class _FromRow:
    @classmethod
    def from_row(cls, row: RowMapping, **extra: Any) -> Self:
        names = [f.name for f in fields(cls) if f.name not in extra]  # type: ignore[arg-type]
        return cls(**{name: row[name] for name in names}, **extra)


@dataclass(frozen=True, slots=True)
class CallRow(_FromRow):
    call_id: str
    start_ts: datetime
    answer_ts: datetime | None
    end_ts: datetime | None
    method: str
    from_uri: str | None
    to_uri: str | None
    from_user: str | None
    to_user: str | None
    caller_ip: str | None
    callee_ip: str | None
    user_agent: str | None
    state: str
    final_status: int | None
    final_reason: str | None
    failure_class: str | None
    category: str
    problems: list[str]
    problem: bool
    duration_s: float | None
    post_dial_delay_ms: float | None
    setup_time_ms: float | None
    codec: str | None
    unreliable: bool
    worst_mos: float | None
    mean_mos: float | None
    worst_loss: float | None
    worst_jitter_ms: float | None
    model_score: float | None
    x_cid: str | None
    session_id: str | None
    p_charging_vector: str | None


@dataclass(frozen=True, slots=True)
class CallPage:
    rows: list[CallRow]
    #: Calls matching the filter (all pages)
    total: int
    #: Category -> calls matching the same filter
    facets: dict[str, int]


@dataclass(frozen=True, slots=True)
class StreamRow(_FromRow):
    stream_id: int
    call_id: str | None
    ssrc: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    first_ts: datetime
    last_ts: datetime
    payload_type: int
    codec: str | None
    packets: int
    expected: int
    lost: int
    loss_ratio: float
    mean_jitter_ms: float
    max_jitter_ms: float
    max_delta_ms: float
    mos: float | None
    r_factor: float | None
    unreliable: bool


@dataclass(frozen=True, slots=True)
class IntervalRow(_FromRow):
    """One interval report; cumulative figures as reported, plus this interval's own loss."""

    stream_id: int
    ts: datetime
    call_id: str | None
    packets: int
    expected: int
    lost: int
    loss_ratio: float
    mean_jitter_ms: float
    max_jitter_ms: float
    mos: float | None
    #: Loss between the previous report of the stream and this one (0..1)
    interval_loss_ratio: float


@dataclass(frozen=True, slots=True)
class AlertRow(_FromRow):
    alert_id: str
    seq: int
    rule: str
    severity: str
    category: str
    call_id: str | None
    source_ip: str | None
    first_ts: datetime
    last_ts: datetime
    summary: str
    score: float | None
    details: dict[str, Any]
    evidence: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class AlertPage:
    rows: list[AlertRow]
    total: int


@dataclass(frozen=True, slots=True)
class MessageRow(_FromRow):
    id: int
    ts: datetime
    frame: int
    call_id: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str
    is_request: bool
    method: str | None
    status_code: int | None
    cseq_num: int | None
    cseq_method: str | None
    retransmission: bool
    first_line: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class CallDetail:
    call: CallRow
    streams: list[StreamRow]
    intervals: list[IntervalRow]
    alerts: list[AlertRow]
    #: The call's SIP messages in time order (at most the store's per-call bound)
    messages: list[MessageRow]
    #: Messages of this Call-ID not stored because of the per-call bound
    messages_dropped: int
    #: The call record as the detector published it
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AlertDetail:
    alert: AlertRow
    #: The evidence messages found in the store, in evidence order
    messages: list[MessageRow]
    #: Evidence entries (frame, ts, ...) with no stored message
    unresolved: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: datetime
    calls: int


@dataclass(frozen=True, slots=True)
class MosBucket:
    low: float
    high: float
    calls: int


@dataclass(frozen=True, slots=True)
class Overview:
    since: datetime
    until: datetime
    #: Calls started by ``until`` and not ended by then (answered or still setting up)
    active_calls: int
    calls: int
    calls_per_minute: list[MinuteCount]
    #: Answered INVITEs / INVITEs started in the window (None without INVITEs)
    answer_seizure_ratio: float | None
    mos_histogram: list[MosBucket]
    latest_alerts: list[AlertRow]
