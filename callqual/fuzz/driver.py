"""Drive (mutated) frames through the whole path a deployment takes, and fail loudly.

decode -> collector events -> Kafka encoding -> the detector's decoding (each
event must come back equal: text is carried losslessly) -> rules -> the JSON
report (must validate back to itself) and the text report -> each record's
encoding -> the alerter's decoding (nothing may be dead-lettered: the detector
never emits what the alerter refuses) -> grouping -> webhook, Slack and
Alertmanager payloads. Any exception out of :func:`drive` is a defect; silent
damage is raised as :class:`PathDefectError`.

Frames go in either one by one or as numpy record batches, the two ways
``Collector.run`` reads a capture, so both code paths are fuzzed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from callqual.alerter.notification import Notification
from callqual.alerter.sender import Notifier, Receiver
from callqual.alerter.service import AlerterService
from callqual.cli.text_report import render
from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.packet import Frame, RecordBatch
from callqual.detector.service import output_key
from callqual.fuzz.mutators import Mutation, apply_plan, is_sip
from callqual.observability.metrics import AlerterMetrics
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import Alert, AnalysisReport, AnyEvent, CallRecord, StreamRecord, parse_event
from callqual.transport import TOPICS, InProcessBus, Message
from callqual.transport.codec import encode

#: Every receiver kind renders each notification (never sent: the payload is what is tested).
_RECEIVERS = (
    Receiver("webhook", "webhook", SecretStr("http://127.0.0.1:9/hook"), secret=SecretStr("fuzz")),
    Receiver("slack", "slack", SecretStr("http://127.0.0.1:9/slack")),
    Receiver("alertmanager", "alertmanager", SecretStr("http://127.0.0.1:9")),
)


class PathDefectError(AssertionError):
    """Damage without an exception: a lossy round trip, or output the next service refuses."""


@dataclass(slots=True)
class DriveResult:
    frames: int = 0
    events: int = 0
    calls: int = 0
    streams: int = 0
    alerts: int = 0
    notifications: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Capture:
    """A capture held in memory, with the frames the SIP mutators can aim at."""

    name: str
    frames: tuple[Frame, ...]
    sip_frames: tuple[int, ...]


def load_capture(path: Path, name: str | None = None) -> Capture:
    with open_capture(path) as capture:
        frames = tuple(capture)
    sip = tuple(i for i, f in enumerate(frames) if is_sip(f))
    return Capture(name or path.name, frames, sip)


def load_captures(root: Path) -> list[Capture]:
    """Every readable capture under ``root`` (sorted by path, so seeds mean the same run to run)."""
    paths = sorted(p for p in root.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    return [load_capture(p, str(p.relative_to(root))) for p in paths]


class _Batched:
    """Frames that ``Collector.run`` reads as record batches of ``size`` records (its chunk path)."""

    def __init__(self, frames: Sequence[Frame], size: int) -> None:
        self.frames = frames
        self.size = size

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)

    def record_batches(self) -> Iterator[RecordBatch]:
        run: list[Frame] = []
        for frame in self.frames:
            if run and (frame.linktype != run[0].linktype or len(run) >= self.size):
                yield _batch(run)
                run = []
            run.append(frame)
        if run:
            yield _batch(run)


def _batch(frames: list[Frame]) -> RecordBatch:
    lengths = np.array([len(f.data) for f in frames], np.int64)
    start = np.zeros(len(frames), np.int64)
    np.cumsum(lengths[:-1], out=start[1:])
    return RecordBatch(
        buf=b"".join(f.data for f in frames),
        linktype=frames[0].linktype,
        first_number=frames[0].number,
        start=start,
        caplen=lengths,
        orig_len=np.array([f.orig_len for f in frames], np.int64),
        ts=np.array([f.ts for f in frames], np.float64),
    )


def _check_event(event: AnyEvent) -> None:
    if parse_event(encode(event)) != event:
        raise PathDefectError(
            f"{event.kind} of frame {getattr(event, 'frame', '?')} changed on its way over Kafka"
        )


def drive(frames: Sequence[Frame], batch_size: int | None = None, source: str = "fuzz") -> DriveResult:
    """Run ``frames`` through everything; per frame, or in record batches of ``batch_size``."""
    result = DriveResult(frames=len(frames))

    def on_event(event: AnyEvent) -> None:
        _check_event(event)
        result.events += 1

    pipeline = EmbeddedPipeline(on_event=on_event)
    pipeline.run(frames if batch_size is None else _Batched(frames, batch_size))
    pipeline.finish()
    report = pipeline.report(source)
    if AnalysisReport.model_validate_json(report.model_dump_json(indent=2)) != report:
        raise PathDefectError("the JSON report does not read back as itself")
    render(report)
    result.calls, result.streams, result.alerts = len(report.calls), len(report.streams), len(report.alerts)
    result.errors = dict(report.summary.errors)
    result.notifications = len(notify(report))
    return result


def notify(report: AnalysisReport) -> list[Notification]:
    """The report's records through the alerter's decoding and grouping, rendered for every receiver."""
    bus = InProcessBus()
    service = AlerterService(
        AlerterMetrics(), Notifier([]), dead_letter=bus.sink(), monotonic=lambda: 0.0, wall=lambda: 0.0
    )
    records: list[tuple[str, CallRecord | StreamRecord | Alert]] = [
        *((TOPICS.calls, c) for c in report.calls),
        *((TOPICS.streams, s) for s in report.streams),
        *((TOPICS.alerts, a) for a in report.alerts),
    ]
    for offset, (topic, record) in enumerate(records):
        service.handle(Message(topic, 0, offset, output_key(record), encode(record)))
    if bus.emitted(TOPICS.deadletter):
        raise PathDefectError(f"the alerter dead-lettered {bus.emitted(TOPICS.deadletter)} detector outputs")
    notifications = service.flush()
    for n in notifications:
        render_notification(n)
    return notifications


def render_notification(n: Notification) -> None:
    """``n`` as every receiver kind would send it (URL, headers, signed body); never sent."""
    for receiver in _RECEIVERS:
        receiver.request(n, 0.0)


def drive_plan(capture: Capture, plan: Sequence[Mutation], batch_size: int | None) -> tuple[DriveResult, int]:
    """``capture`` with ``plan`` applied, driven; and how many frames the plan changed."""
    frames, mutated = apply_plan(capture.frames, plan)
    return drive(frames, batch_size, capture.name), mutated
