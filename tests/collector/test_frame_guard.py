"""The per-frame guard: when the collector's code fails on one frame, the failure is counted as
``internal.<ExceptionType>``, logged once per type with the frame number, handed to ``on_failure``,
and every other frame is analysed as if nothing had happened, on both paths of Collector.run.

The failure is injected where a real one would come from: the collector's event sink (in
``callqual analyze`` that is the detector, in the service the Kafka publisher) raising on the
events of chosen frames of a real capture, and chunks a source hands over damaged.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.frame_guard import FrameFailure
from callqual.collector.packet import Frame, RecordBatch
from callqual.schemas import AnyEvent, RtpStreamReport
from tests.collector.event_equality import assert_same
from tests.shared_captures import PCAPS

#: SIP, RTP and RTCP in one Ethernet capture, 4,269 frames
CAPTURE = PCAPS / "heplify/rtp_rtcp_sip_ipv4_udp.pcap"


class _FailingSink:
    """Keeps the events, except that those of ``frames`` make it raise ``exc``."""

    def __init__(self, frames: set[int], exc: Callable[[], Exception] = lambda: KeyError("injected")) -> None:
        self.frames = frames
        self.exc = exc
        self.events: list[AnyEvent] = []

    def __call__(self, event: AnyEvent) -> None:
        if getattr(event, "frame", None) in self.frames:
            raise self.exc()
        self.events.append(event)


def _run(collector: Collector, chunked: bool) -> None:
    with open_capture(CAPTURE) as capture:
        if chunked:
            collector.run(capture)
        else:
            frames: Iterator[Frame] = iter(capture)  # no record_batches(): the per-frame loop
            collector.run(frames)
    collector.finish()


def _clean() -> tuple[list[AnyEvent], Collector]:
    out: list[AnyEvent] = []
    collector = Collector(out.append)
    _run(collector, chunked=True)
    return out, collector


def _dumps(events: list[AnyEvent]) -> list[dict[str, Any]]:
    return [e.model_dump() for e in events]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunk-path", "frame-path"])
def test_a_failing_frame_is_counted_logged_once_and_the_rest_goes_on(
    chunked: bool, caplog: pytest.LogCaptureFixture
) -> None:
    clean, reference = _clean()
    sip_frames = [e.frame for e in clean if e.kind == "sip_message"]
    failing = {sip_frames[1], sip_frames[5]}
    sink = _FailingSink(failing)
    failures: list[FrameFailure] = []
    collector = Collector(sink, on_failure=failures.append)
    with caplog.at_level(logging.ERROR, logger="callqual.collector"):
        _run(collector, chunked)

    assert collector.errors == {"internal.KeyError": 2}
    assert (collector.frames, collector.bytes) == (reference.frames, reference.bytes)
    expected = [e for e in clean if getattr(e, "frame", None) not in failing]
    assert len(sink.events) == len(expected) == len(clean) - 2
    for i, (a, b) in enumerate(zip(_dumps(sink.events), _dumps(expected), strict=True)):
        assert_same(a, b, f"event {i}")

    logged = [r for r in caplog.records if r.name == "callqual.collector"]
    assert len(logged) == 1, "one log line per exception type, not per frame"
    assert logged[0].__dict__["frame"] == min(failing) and logged[0].exc_info is not None
    assert [(f.reason, f.frame, f.records) for f in failures] == [
        ("internal.KeyError", n, 1) for n in sorted(failing)
    ]
    with open_capture(CAPTURE) as capture:
        data = {f.number: f.data for f in capture if f.number in failing}
    assert all(f.data == data[f.frame] and f.error == "KeyError: 'injected'" for f in failures)


class _BusGoneError(Exception):
    pass


def test_a_fatal_failure_of_the_sink_still_ends_the_run() -> None:
    clean, _ = _clean()
    first_sip = next(e.frame for e in clean if e.kind == "sip_message")
    collector = Collector(_FailingSink({first_sip}, _BusGoneError), fatal=(_BusGoneError,))
    with pytest.raises(_BusGoneError):
        _run(collector, chunked=True)
    assert not collector.errors


class _DamagedChunks:
    """A capture source whose record_batches() hands every chunk through ``damage``."""

    def __init__(self, damage: Callable[[RecordBatch], RecordBatch]) -> None:
        self.damage = damage

    def __iter__(self) -> Iterator[Frame]:
        raise AssertionError("Collector.run must take the chunk path")

    def record_batches(self) -> Iterator[RecordBatch]:
        with open_capture(CAPTURE) as capture:
            batches = capture.record_batches()
            assert batches is not None
            for batch in batches:
                yield self.damage(batch)


def test_a_chunk_the_numpy_path_fails_on_is_fed_frame_by_frame() -> None:
    """Record offsets as floats: numpy refuses them as indices before the first record is taken."""
    clean, reference = _clean()
    out: list[AnyEvent] = []
    failures: list[FrameFailure] = []
    collector = Collector(out.append, on_failure=failures.append)
    collector.run(_DamagedChunks(lambda b: dataclasses.replace(b, start=b.start.astype(np.float64))))
    collector.finish()

    assert collector.errors == {"internal.IndexError": 1}
    assert [(f.frame, f.records, f.data) for f in failures] == [(1, reference.frames, b"")]
    assert (collector.frames, collector.bytes) == (reference.frames, reference.bytes)
    for i, (a, b) in enumerate(zip(_dumps(out), _dumps(clean), strict=True)):
        assert_same(a, b, f"event {i}")


def test_a_chunk_that_fails_midway_loses_only_the_record_it_cannot_give() -> None:
    """One timestamp short: the chunk loop fails near its end, after feeding and staging most records.

    Records already taken are neither lost nor taken twice; the rest go through feed(), except
    the last, which has no timestamp to build a frame with.
    """
    clean, reference = _clean()
    out: list[AnyEvent] = []
    collector = Collector(out.append)
    collector.run(_DamagedChunks(lambda b: dataclasses.replace(b, ts=b.ts[:-1])))
    collector.finish()

    assert collector.errors == {"internal.ValueError": 1, "internal.IndexError": 1}
    with open_capture(CAPTURE) as capture:
        last = list(capture)[-1]
    assert (collector.frames, collector.bytes) == (reference.frames - 1, reference.bytes - last.orig_len)

    def final_packets(events: list[AnyEvent]) -> int:
        return sum(e.packets for e in events if isinstance(e, RtpStreamReport) and e.final)

    assert final_packets(out) == final_packets(clean) - 1
    signalling = [_dumps([e for e in events if e.kind == "sip_message"]) for events in (out, clean)]
    assert signalling[0] == signalling[1]


def test_the_per_frame_loop_goes_on_after_its_inline_fast_path_fails() -> None:
    """A source yielding one frame without a timestamp (a broken live source): the inline RTP path of
    Collector.run raises on it; the loop counts it and resumes with the next frame, counts kept."""
    clean, reference = _clean()
    with open_capture(CAPTURE) as capture:
        frames = list(capture)
    broken = frames[-100]  # an RTP packet of a known stream: the inline path takes it
    frames[-100] = dataclasses.replace(broken, ts=None)  # type: ignore[arg-type]
    out: list[AnyEvent] = []
    failures: list[FrameFailure] = []
    collector = Collector(out.append, on_failure=failures.append)
    collector.run(iter(frames))
    collector.finish()

    assert collector.errors == {"internal.TypeError": 1}
    assert [(f.frame, f.data) for f in failures] == [(broken.number, broken.data)]
    assert (collector.frames, collector.bytes) == (reference.frames - 1, reference.bytes - broken.orig_len)

    def final_packets(events: list[AnyEvent]) -> int:
        return sum(e.packets for e in events if isinstance(e, RtpStreamReport) and e.final)

    assert final_packets(out) == final_packets(clean) - 1


class _SourceFailsAfter:
    """An iterator of frames that raises at every step after ``n`` frames (a live source gone bad)."""

    def __init__(self, frames: list[Frame], n: int) -> None:
        self.frames = frames
        self.n = n
        self.calls = 0

    def __iter__(self) -> _SourceFailsAfter:
        return self

    def __next__(self) -> Frame:
        self.calls += 1
        if self.calls > self.n:
            raise OSError("interface went down")
        return self.frames[self.calls - 1]


def test_a_source_that_keeps_raising_ends_the_run_counted() -> None:
    with open_capture(CAPTURE) as capture:
        frames = list(capture)
    source = _SourceFailsAfter(frames, 1000)
    collector = Collector(lambda _e: None)
    collector.run(source)
    collector.finish()
    assert (collector.frames, source.calls) == (1000, 1001)
    assert collector.errors == {"internal.OSError": 1}
