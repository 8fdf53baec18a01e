"""``callqual analyze`` as a user runs it: output formats, exit codes, bad input."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.schemas import AnalysisReport
from tests.shared_captures import PCAPS

SHARED = PCAPS


def _pcap_header(linktype: int = 1) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)


def _record(ts: float, data: bytes, orig: int | None = None) -> bytes:
    sec = int(ts)
    return struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(data), orig or len(data)) + data


def test_json_report_validates_against_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["analyze", str(SHARED / "rtp-pcap/SIP_DTMF2.pcap"), "--format", "json", "--no-progress"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"summary", "calls", "streams", "alerts"}
    report = AnalysisReport.model_validate(doc)
    assert report.summary.frames == 1360
    assert report.summary.calls >= 1
    assert all(isinstance(s.ssrc, int) for s in report.streams)


def test_text_report_lists_calls_and_streams(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(SHARED / "rtp-pcap/sip-rtp-g729a.pcap"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "CALLS (1" in out
    assert "RTP STREAMS (1" in out


def test_missing_file_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "nope.pcap")]) == 3
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_unwritable_output_exits_6_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    capture = str(SHARED / "rtp-pcap/sip-rtp-g729a.pcap")
    assert main(["analyze", capture, "--format", fmt, "--no-progress", "-o", str(tmp_path)]) == 6
    assert f"cannot write the report to {tmp_path}: Is a directory" in capsys.readouterr().err
    missing = tmp_path / "no-such-dir" / "report.out"
    assert main(["analyze", capture, "--format", fmt, "--no-progress", "-o", str(missing)]) == 6
    assert "No such file or directory" in capsys.readouterr().err
    written = tmp_path / "report.out"
    assert main(["analyze", capture, "--format", fmt, "--no-progress", "-o", str(written)]) == 0
    assert "sip-rtp-g729a" in written.read_text()


def test_not_a_capture_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "notes.pcap"
    bogus.write_text("this is not a capture\n" * 10)
    assert main(["analyze", str(bogus)]) == 3
    assert "not a readable capture" in capsys.readouterr().err


def test_truncated_file_is_analysed_and_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = SHARED / "rtp-pcap/sip-rtp-g722.pcap"
    data = whole.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3 + 7])
    assert main(["analyze", str(cut), "--format", "json", "--no-progress"]) == 4
    captured = capsys.readouterr()
    assert "truncated" in captured.err
    report = AnalysisReport.model_validate_json(captured.out)
    assert report.summary.truncated
    assert report.summary.frames > 100


def test_hostile_packets_are_counted_not_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A packet cut mid-header, zero-length UDP, and a 64 KB SIP header: counted, never a traceback."""
    eth = b"\x00" * 12 + b"\x08\x00"

    def ipv4_udp(payload: bytes, sport: int = 5060, dport: int = 5060) -> bytes:
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        total = 20 + len(udp)
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            total & 0xFFFF,
            1,
            0,
            64,
            17,
            0,
            bytes([10, 0, 0, 1]),
            bytes([10, 0, 0, 2]),
        )
        return eth + ip + udp

    # The largest header a UDP datagram can carry (64 KB); bigger ones over TCP are the decoder's tests.
    huge = b"INVITE sip:a@b SIP/2.0\r\nX-Junk: " + b"A" * 65400 + b"\r\nCall-ID: x\r\n\r\n"
    frames = [
        ipv4_udp(b"")[:20],  # cut mid-IP-header
        ipv4_udp(b""),  # zero-length UDP
        ipv4_udp(huge),
        ipv4_udp(b"SIP/2.0 200 OK\r\n\r\n"),  # no Call-ID
    ]
    path = tmp_path / "hostile.pcap"
    path.write_bytes(_pcap_header() + b"".join(_record(1.0 + i, f) for i, f in enumerate(frames)))
    assert main(["analyze", str(path), "--format", "json", "--no-progress"]) == 0
    report = AnalysisReport.model_validate_json(capsys.readouterr().out)
    assert report.summary.frames == 4
    counted = sum(report.summary.errors.values()) + sum(report.summary.skipped.values())
    assert counted >= 4, report.summary


def test_unknown_link_type_is_a_counted_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "weird.pcap"
    path.write_bytes(_pcap_header(linktype=147) + _record(1.0, b"\x01\x02\x03\x04" * 10))
    assert main(["analyze", str(path), "--format", "json", "--no-progress"]) == 0
    report = AnalysisReport.model_validate_json(capsys.readouterr().out)
    assert sum(report.summary.skipped.values()) == 1


def test_console_script_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "callqual", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("callqual ")
