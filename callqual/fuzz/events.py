"""Hostile messages: real events and records with fields set to values a broken producer sends.

The detector and the alerter read whatever is on their topics, not only what
our services write. Each mutation replaces one field (or one field of a nested SDP or
RTCP block) with a hostile value: 0, negatives, 64-bit extremes, huge floats,
``NaN``/``Infinity`` literals, empty or very long text, ``null``, a list.
What the schema refuses is dead-lettered by the service; what it accepts
must apply without an exception (:func:`drive_events`, :func:`drive_records`,
which also renders every notification).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from callqual.alerter.sender import Notifier
from callqual.alerter.service import AlerterService
from callqual.collector.collector import Collector
from callqual.collector.packet import Frame
from callqual.detector.detector import Detector, Output
from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules.settings import RuleSettings
from callqual.fuzz.driver import render_notification
from callqual.observability.metrics import AlerterMetrics
from callqual.schemas import AnalysisReport, AnyEvent, parse_event
from callqual.transport import TOPICS, InProcessBus, Message
from callqual.transport.codec import encode

HOSTILE: tuple[Any, ...] = (
    0,
    -1,
    2**31,
    2**63,
    -(2**63),
    65_536,
    1e308,
    -1e308,
    1e-300,
    0.5,
    float("inf"),
    float("-inf"),
    float("nan"),
    "",
    "x" * 10_000,
    "\u0000\ud7ff\ufffd",
    None,
    [],
    True,
)


def events_of(frames: Sequence[Frame]) -> list[dict[str, Any]]:
    """The collector's events for ``frames``, as the JSON objects on the wire."""
    events: list[AnyEvent] = []
    collector = Collector(events.append)
    collector.run(frames)
    collector.finish()
    return [json.loads(encode(e)) for e in events]


def mutate_events(rng: random.Random, events: list[dict[str, Any]], n: int) -> list[str]:
    """``events`` with ``n`` fields replaced by hostile values, as JSON texts (NaN written as ``NaN``)."""
    out = [dict(e) for e in events]
    for _ in range(n):
        event = rng.choice(out)
        key = rng.choice([k for k in event if k != "kind"])
        nested = event[key]
        if isinstance(nested, list) and nested and isinstance(nested[0], dict) and rng.random() < 0.7:
            item = dict(rng.choice(nested))
            item[rng.choice(list(item))] = rng.choice(HOSTILE)
            event[key] = [item, *nested[1:]]
        elif isinstance(nested, dict) and nested and rng.random() < 0.7:
            event[key] = {**nested, rng.choice(list(nested)): rng.choice(HOSTILE)}
        else:
            event[key] = rng.choice(HOSTILE)
    return [json.dumps(e) for e in out]


def records_of(report: AnalysisReport) -> list[tuple[str, dict[str, Any]]]:
    """A report's calls, streams and alerts as (topic, JSON object), as the detector publishes them."""
    return [
        *((TOPICS.calls, json.loads(encode(c))) for c in report.calls),
        *((TOPICS.streams, json.loads(encode(s))) for s in report.streams),
        *((TOPICS.alerts, json.loads(encode(a))) for a in report.alerts),
    ]


def drive_records(messages: Sequence[tuple[str, str | bytes]]) -> tuple[int, int]:
    """(topic, value) through the alerter, then every notification rendered; (notifications, refused)."""
    bus = InProcessBus()
    service = AlerterService(
        AlerterMetrics(), Notifier([]), dead_letter=bus.sink(), monotonic=lambda: 0.0, wall=lambda: 0.0
    )
    for offset, (topic, value) in enumerate(messages):
        raw = value.encode() if isinstance(value, str) else value
        service.handle(Message(topic, 0, offset, None, raw))
    notifications = service.flush()
    for n in notifications:
        render_notification(n)
    return len(notifications), bus.emitted(TOPICS.deadletter)


def drive_events(messages: Sequence[str | bytes]) -> tuple[int, int]:
    """Messages through the detector as its service applies them; (applied, refused by the schema)."""
    outputs: list[Output] = []
    detector = Detector(outputs.append, RuleEngine(RuleSettings()))
    applied = refused = 0
    for raw in messages:
        try:
            event = parse_event(raw)
        except ValidationError:
            refused += 1
            continue
        detector.handle(event)
        applied += 1
    detector.finish()
    for out in outputs:
        encode(out)
    return applied, refused
