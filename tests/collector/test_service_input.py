"""The collector service feeds its capture to the core in RecordBatches, stoppable, with housekeeping.

``CollectorService.run`` wraps the source for stop checks, pacing and periodic
housekeeping (watermarks, metrics). The wrapper must not hide the source's
``record_batches()``: without pacing a classic pcap file (and a live capture)
takes the collector's numpy chunk path, and must publish exactly the events the
per-frame path publishes. The sink here is the in-process bus, read back whole
(the Kafka round trip is tests/pipeline/test_kafka_pipeline.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callqual.collector.capture.pcap_file import CaptureFile, open_capture
from callqual.collector.collector import Collector
from callqual.collector.packet import Frame, RecordBatch
from callqual.collector.service import (
    EXIT_OK,
    CollectorService,
    CollectorServiceSettings,
    EventPublisher,
)
from callqual.collector.service.runner import _ServiceInput
from callqual.schemas import AnyEvent
from callqual.simulator import simulate
from callqual.transport import InProcessBus, Message
from callqual.transport.ordering import H_MARKER
from tests.collector.event_equality import assert_same


class RecordingBus:
    """The in-process bus with 3 partitions, read back whole: what the collector published, in order."""

    def __init__(self) -> None:
        self.bus = InProcessBus(max_messages_per_topic=10_000_000, partitions=3)
        self._messages: list[Message] = []

    def _drain(self) -> list[Message]:
        while (m := self.bus.take(["events"], 0)) is not None:
            self._messages.append(m)
        return self._messages

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.value) for m in self._drain() if H_MARKER not in dict(m.headers)]

    def markers(self) -> list[str]:
        return [dict(m.headers)[H_MARKER].decode() for m in self._drain() if H_MARKER in dict(m.headers)]


def _service(
    monkeypatch: pytest.MonkeyPatch, pcap: Path, **settings: Any
) -> tuple[CollectorService, RecordingBus, list[int]]:
    """A service publishing to the in-process bus, and the sizes of the batches its core ran.

    Counted as the service's input hands them to ``Collector.run`` (which runs each one through
    the chunk path): the collector may be compiled (mypyc), and its methods cannot be patched.
    """
    producer = RecordingBus()
    service = CollectorService(CollectorServiceSettings(pcap=pcap, **settings), sink=producer.bus.sink())
    service.publisher = EventPublisher(producer.bus.sink(), "events", service.run_id)
    sizes: list[int] = []
    record_batches = _ServiceInput.record_batches

    def counting(self: _ServiceInput) -> Iterator[RecordBatch] | None:
        batches = record_batches(self)
        return None if batches is None else _counted(batches, sizes)

    monkeypatch.setattr(_ServiceInput, "record_batches", counting)
    return service, producer, sizes


def _counted(batches: Iterator[RecordBatch], sizes: list[int]) -> Iterator[RecordBatch]:
    for batch in batches:
        sizes.append(len(batch))
        yield batch


def _per_frame_events(pcap: Path) -> tuple[list[dict[str, Any]], int]:
    out: list[AnyEvent] = []
    collector = Collector(out.append)
    with open_capture(pcap) as capture:
        frames: Iterator[Frame] = iter(capture)  # no record_batches(): the per-frame loop
        collector.run(frames)
    collector.finish()
    return [json.loads(e.model_dump_json()) for e in out], collector.frames


@pytest.fixture(scope="module")
def load_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pcap = tmp_path_factory.mktemp("service") / "load.pcap"
    simulate("load", pcap, calls=20, duration=40)  # ~80,000 frames, 18 MB: several read chunks
    return pcap


def _chunks(pcap: Path) -> list[int]:
    """The sizes of the RecordBatches the file reader cuts ``pcap`` into."""
    with open_capture(pcap) as capture:
        batches = capture.record_batches()
        assert batches is not None
        return [len(b) for b in batches]


def test_file_takes_the_chunk_path_and_publishes_what_the_frame_path_emits(
    monkeypatch: pytest.MonkeyPatch, load_pcap: Path
) -> None:
    service, producer, sizes = _service(monkeypatch, load_pcap)
    with open_capture(load_pcap) as capture:
        assert service.run(capture) == EXIT_OK
    expected, frames = _per_frame_events(load_pcap)
    assert sizes == _chunks(load_pcap), "the service hid the file's record_batches()"
    assert len(sizes) >= 2
    assert sum(sizes) == frames == service.collector.frames
    assert_same(producer.events(), expected)
    markers = producer.markers()
    assert markers[-3:] == ["end"] * 3  # one end marker per partition, last
    # Housekeeping after every batch: each spans seconds of capture, so each gives a watermark.
    assert markers.count("watermark") >= 3 * len(sizes)


def test_paced_replay_stays_per_frame(monkeypatch: pytest.MonkeyPatch, load_pcap: Path) -> None:
    service, producer, sizes = _service(monkeypatch, load_pcap, pace=1e9)  # paced, but too fast to wait
    with open_capture(load_pcap) as capture:
        assert service.run(capture) == EXIT_OK
    expected, frames = _per_frame_events(load_pcap)
    assert sizes == []
    assert service.collector.frames == frames
    assert_same(producer.events(), expected)


class _StopsAfter:
    """A capture file that stops the service after handing out ``n`` batches."""

    def __init__(self, capture: CaptureFile, service: CollectorService, n: int) -> None:
        self.capture, self.service, self.n = capture, service, n

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.capture)

    def record_batches(self) -> Iterator[RecordBatch]:
        batches = self.capture.record_batches()
        assert batches is not None
        for i, batch in enumerate(batches, 1):
            yield batch
            if i == self.n:
                self.service.stop()


def test_stop_ends_the_batch_run_cleanly(monkeypatch: pytest.MonkeyPatch, load_pcap: Path) -> None:
    service, producer, sizes = _service(monkeypatch, load_pcap)
    with open_capture(load_pcap) as capture:
        assert service.run(_StopsAfter(capture, service, 2)) == EXIT_OK
    frames = sum(_chunks(load_pcap))
    assert sizes == _chunks(load_pcap)[:2]
    assert service.collector.frames == sum(sizes) < frames
    finals = [e for e in producer.events() if e["kind"] == "rtp_stream" and e["final"]]
    assert finals, "a stopped run still gives every stream its final report"
    assert producer.markers()[-3:] == ["end"] * 3
