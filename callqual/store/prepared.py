"""A batch of wire records and the same batch as store rows, built without the database.

Building rows (two hashes per SIP message, an E-model rating per interval, JSON of each record)
is the client's largest share of a write and needs nothing from the database, so it is done
apart from the transaction: on the caller's thread while a writer thread has the previous batch
in the database (``pipelined.PipelinedWriter``, the service's writer thread). A prepared batch
can be written again after a failed transaction: the writer sets only values it recomputes on
every try (``retransmission``, an alert's ``seq``).
"""

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from callqual.schemas import (
    Alert,
    CallRecord,
    CallStateUpdate,
    RtpStreamReport,
    SipMessageEvent,
    StreamRecord,
)
from callqual.store import rows as wire

Row = dict[str, Any]


@dataclass(slots=True)
class Batch:
    """What one transaction writes (any mix of kinds, in any order)."""

    calls: list[CallRecord] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    intervals: list[RtpStreamReport] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    messages: list[SipMessageEvent] = field(default_factory=list)
    call_states: list[CallStateUpdate] = field(default_factory=list)

    def __len__(self) -> int:
        # Asked once per consumed record by the service: plain additions, no generator.
        return (
            len(self.calls)
            + len(self.streams)
            + len(self.intervals)
            + len(self.alerts)
            + len(self.messages)
            + len(self.call_states)
        )


@dataclass(slots=True)
class PreparedBatch:
    """A :class:`Batch` as rows of each table, and what its transaction needs to know about them."""

    calls: list[Row] = field(default_factory=list)
    streams: list[Row] = field(default_factory=list)
    intervals: list[Row] = field(default_factory=list)
    #: One row per alert id (the last of the batch's copies)
    alerts: list[Row] = field(default_factory=list)
    messages: list[Row] = field(default_factory=list)
    call_states: list[CallStateUpdate] = field(default_factory=list)
    #: Days of the rows that go to daily partitions (SIP messages, interval reports)
    days: set[date] = field(default_factory=set)
    #: Call-IDs whose derived call columns change with this batch (its calls, streams, alerts)
    touched: set[str] = field(default_factory=set)


def prepare(batch: Batch) -> PreparedBatch:
    """The rows of ``batch``; raises what a row cannot hold (a time past year 9999: ValueError,
    OverflowError, OSError) before any of the batch reaches the database."""
    messages = [wire.message_row(m) for m in batch.messages]
    intervals = [wire.interval_row(r) for r in batch.intervals]
    call_rows = [wire.call_row(c) for c in batch.calls]
    stream_rows = [wire.stream_row(s) for s in batch.streams]
    alert_rows = list({r["alert_id"]: r for r in map(wire.alert_row, batch.alerts)}.values())
    stamps = {r["ts"] for r in messages} | {r["ts"] for r in intervals}
    touched = (
        {r["call_id"] for r in call_rows}
        | {r["call_id"] for r in stream_rows if r["call_id"] is not None}
        | {r["call_id"] for r in alert_rows if r["call_id"] is not None}
    )
    return PreparedBatch(
        calls=call_rows,
        streams=stream_rows,
        intervals=intervals,
        alerts=alert_rows,
        messages=messages,
        call_states=list(batch.call_states),
        days={ts.date() for ts in stamps},
        touched=touched,
    )
