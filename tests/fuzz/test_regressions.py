"""Each crash the fuzz harness found, pinned on the input that showed it."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.collector.packet import Frame
from callqual.fuzz.corpus import broken_files
from callqual.fuzz.driver import drive, load_capture, notify
from callqual.fuzz.layers import is_rtcp, locate, looks_like_rtp_or_rtcp
from callqual.pipeline.embedded import analyze_file
from tests.shared_captures import PCAPS


def test_rtcp_with_a_bad_first_packet_type_on_an_announced_rtcp_port_is_counted() -> None:
    """Was: RtcpParseError (a DecodeError, not the ValueError the collector caught) ended the run."""
    capture = load_capture(PCAPS / "heplify/rtp_rtcp_sip_ipv4_udp.pcap")
    frames = list(capture.frames)
    broken = 0
    for i, f in enumerate(frames):
        layers = locate(f.linktype, f.data)
        if layers is None or layers.payload is None or layers.l4_proto != 17:
            continue
        if looks_like_rtp_or_rtcp(f.data, layers.payload) and is_rtcp(f.data, layers.payload):
            data = bytearray(f.data)
            data[layers.payload + 1] = 0  # packet type 0: not RTCP
            frames[i] = Frame(f.number, f.ts, f.linktype, bytes(data), f.orig_len)
            broken += 1
    assert broken == 28
    assert drive(capture.frames).errors == {}
    for batch_size in (None, 64):
        # 14 of them are on the two RTCP ports the SDP announced; the others go unrecognised.
        assert drive(frames, batch_size).errors == {"rtcp.bad_packet_type": 14}


def test_a_capture_of_empty_records_is_analysed(tmp_path: Path) -> None:
    """Was: IndexError in fast_path.ip_offsets on a record batch with no bytes at all (chunk path)."""
    path = tmp_path / "empty-records.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    records = b"".join(struct.pack("<IIII", 1_700_000_000 + i, 0, 0, 60) for i in range(3))
    path.write_bytes(header + records)
    report = analyze_file(path)
    assert report.summary.frames == 3
    assert report.summary.errors == {"link.truncated": 3}


def test_a_pcapng_clock_past_year_9999_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: ValueError (year 586524 is out of range) rendering the text report: a traceback, exit 1."""
    source = (PCAPS / "nDPI/rtp.pcapng").read_bytes()
    variants = dict(broken_files(random.Random(0), source))
    path = tmp_path / "far-future.pcapng"
    path.write_bytes(variants["ts_far_future"])
    assert main(["analyze", str(path), "--no-progress"]) == 0
    assert "s since 1970 .. 2022-02-01" in capsys.readouterr().out
    report = analyze_file(path)
    assert report.summary.first_ts is not None and report.summary.first_ts > 253_402_300_800  # year 10000


def test_notifications_render_alerts_stamped_past_year_9999() -> None:
    """Was: OverflowError/OSError in the payloads' ISO timestamps (the receiver's worker gave up)."""
    report = analyze_file(PCAPS / "rtp-pcap/aaa.pcap")
    late = [a.model_copy(update={"first_ts": 1.8e13, "last_ts": 1e300}) for a in report.alerts]
    assert late and len(notify(report.model_copy(update={"alerts": late}))) >= 1
