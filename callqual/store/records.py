"""What a consumed message holds for the call store: the record, and the batch list it goes to.

The events topic carries the collector's progress markers too (ordering, not
data): they are recognised by their ``kind`` and skipped, never dead-lettered.
"""

from __future__ import annotations

import json
from typing import Literal

import orjson
from pydantic import ValidationError

from callqual.schemas import (
    Alert,
    CallRecord,
    CallStateUpdate,
    RtpStreamReport,
    SipMessageEvent,
    StreamRecord,
    parse_event,
)
from callqual.store.prepared import Batch
from callqual.transport import Message, Topics
from callqual.transport.ordering import Marker

__all__ = ["COLLECTOR_MARKERS", "BatchField", "Record", "decode_record", "record_kind", "single_batch"]

#: The collector's progress markers on the events topic (ordering information, not data)
COLLECTOR_MARKERS = frozenset(m.value for m in Marker)

#: The :class:`Batch` list a decoded record goes to (``messages``, ``intervals``, ``calls``...)
BatchField = Literal["calls", "streams", "intervals", "alerts", "messages", "call_states"]
Record = CallRecord | StreamRecord | RtpStreamReport | Alert | SipMessageEvent | CallStateUpdate


def single_batch(name: BatchField, record: Record) -> Batch:
    """A batch of one record (a rejected batch is written again record by record)."""
    out = Batch()
    getattr(out, name).append(record)
    return out


def record_kind(value: bytes) -> object:
    """The ``kind`` of a JSON object (None for anything else); ValueError if not JSON at all.

    orjson first: ``json.loads`` of a call record cost as much as validating it. What orjson
    refuses (a lone surrogate escape, which the models accept and escape) json.loads decides.
    """
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        doc = json.loads(value)
    return doc.get("kind") if isinstance(doc, dict) else None


def decode_record(t: Topics, message: Message) -> tuple[BatchField, Record] | None:
    """The record one message holds and the batch list it goes to (None: not kept).

    Raises pydantic's ``ValidationError`` or ``ValueError`` for what is not a record of its
    topic (the service dead-letters it).
    """
    topic = message.topic
    if topic == t.events:
        try:
            event = parse_event(message.value)
        except ValidationError:
            if record_kind(message.value) in COLLECTOR_MARKERS:
                return None
            raise
        if isinstance(event, SipMessageEvent):
            return "messages", event
        if isinstance(event, RtpStreamReport) and not event.final:
            return "intervals", event
        return None
    if topic == t.alerts:
        return "alerts", Alert.model_validate_json(message.value)
    if topic == t.call_state:
        return "call_states", CallStateUpdate.model_validate_json(message.value)
    if topic in (t.calls, t.streams):
        kind = record_kind(message.value)
        if kind == "call_record":
            return "calls", CallRecord.model_validate_json(message.value)
        if kind == "stream_record":
            return "streams", StreamRecord.model_validate_json(message.value)
        raise ValueError(f"unexpected kind {kind!r}")
    return None
