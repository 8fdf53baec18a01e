"""The records the call store service consumes, the batch list each goes to, and their ``kind``.

Decoding a consumed message (its topic decides the model) is the service's
wiring (``service.decode_record``); what is here reads nothing but bytes.
"""

from __future__ import annotations

import json
from typing import Literal

import orjson

from callqual.schemas import (
    Alert,
    CallRecord,
    CallStateUpdate,
    RtpStreamReport,
    SipMessageEvent,
    StreamRecord,
)
from callqual.store.prepared import Batch

__all__ = ["BatchField", "Record", "record_kind", "single_batch"]

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
