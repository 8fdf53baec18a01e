"""A live capture split in two processes (capture + collector | detector) reports what it captured.

Real traffic on a real veth into a fresh network namespace (the fixture of
``tests/collector/test_live_capture.py``), replayed by tcpreplay; the split
live report must hold every frame, call and stream the file analysis of the
same capture holds. A missing interface is the same clear error as in one
process. (The CLI's ``--interface --split`` stopping on SIGTERM is tested with the one-process
CLI, in ``tests/collector/test_live_capture.py``.)
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from callqual.collector.capture.live import LiveCapture, LiveCaptureError
from callqual.pipeline.embedded import EmbeddedPipeline, analyze_file
from callqual.pipeline.live_split import LiveSplit
from callqual.schemas import AnalysisReport
from callqual.simulator import simulate
from tests.collector.test_live_capture import Link, link  # noqa: F401  (the veth fixture)


def _same_calls_and_streams(report: AnalysisReport, reference: AnalysisReport) -> None:
    assert report.summary.frames == reference.summary.frames
    assert report.summary.sip_messages == reference.summary.sip_messages
    assert sorted((c.call_id, c.final_status) for c in report.calls) == sorted(
        (c.call_id, c.final_status) for c in reference.calls
    )
    assert sorted(s.packets for s in report.streams) == sorted(s.packets for s in reference.streams)


@pytest.mark.slow
def test_split_live_capture_reports_everything_replayed(link: Link, tmp_path: Path) -> None:  # noqa: F811
    pcap = tmp_path / "load.pcap"
    simulate("load", pcap, calls=4, duration=3)
    reference = analyze_file(pcap)
    pipeline = EmbeddedPipeline()
    split = LiveSplit(pipeline, LiveCapture(link.interface)).open()
    assert split.capture.bpf and "udp" in split.capture.bpf  # the child's filter, reported back
    thread = threading.Thread(target=split.run, daemon=True)
    thread.start()
    try:
        link.replay(pcap, "--pps", "3000")
        time.sleep(0.5)
    finally:
        split.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert split.stats is not None
    assert split.stats.dropped == 0 and split.stats.queue_dropped == 0
    assert split.stats.captured == reference.summary.frames
    assert split.child_cpu_s > 0
    pipeline.finish()
    report = pipeline.report(f"live:{link.interface}")
    _same_calls_and_streams(report, reference)
    assert report.summary.calls == 4 and report.summary.streams >= 8
    assert not multiprocessing.active_children()


def test_a_missing_interface_is_a_clear_error_and_no_process_is_left() -> None:
    split = LiveSplit(EmbeddedPipeline(), LiveCapture("cq-no-such-if0"))
    with pytest.raises(LiveCaptureError, match="cq-no-such-if0"):
        split.open()
    assert not multiprocessing.active_children()
