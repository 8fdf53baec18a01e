"""The one JSON document ``callqual analyze --format json`` prints."""

from pydantic import Field

from callqual.schemas.alerts import Alert
from callqual.schemas.base import SCHEMA_VERSION, WireModel
from callqual.schemas.records import CallRecord, StreamRecord


class Summary(WireModel):
    schema_version: int = SCHEMA_VERSION
    source: str
    frames: int
    bytes: int
    first_ts: float | None
    last_ts: float | None
    sip_messages: int
    calls: int
    streams: int
    alerts: int
    calls_by_category: dict[str, int] = Field(default_factory=dict)
    #: Counted, never fatal: decode/parse problems by reason (e.g. 'sip.bad_start_line')
    errors: dict[str, int] = Field(default_factory=dict)
    #: Things deliberately not analysed (e.g. 'link.unsupported_linktype') by reason
    skipped: dict[str, int] = Field(default_factory=dict)
    #: Bounded-table evictions and other deliberate drops, by reason
    dropped: dict[str, int] = Field(default_factory=dict)
    truncated: bool = False


class AnalysisReport(WireModel):
    summary: Summary
    calls: list[CallRecord]
    streams: list[StreamRecord]
    alerts: list[Alert]
