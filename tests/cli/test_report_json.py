"""The JSON report written record by record is byte for byte what the whole-model serializer gives."""

import io
from pathlib import Path

import pytest

from callqual.cli.report_json import write_report_json
from callqual.pipeline.embedded import analyze_file
from callqual.simulator import simulate
from tests.shared_captures import PCAPS


def _check(path: Path) -> None:
    report = analyze_file(path)
    out = io.BytesIO()
    write_report_json(report, out)
    assert out.getvalue() == (report.model_dump_json(indent=2) + "\n").encode()


def test_demo_capture_with_calls_streams_and_alerts(tmp_path: Path) -> None:
    path = tmp_path / "demo.pcap"
    simulate("demo", path)
    report = analyze_file(path)
    assert report.calls and report.streams and report.alerts
    _check(path)


@pytest.mark.parametrize("name", ["heplify/sip_sctp.pcap", "rtp-pcap", "sngrep/ipv6frag.pcap"])
def test_shared_captures_including_empty_lists(name: str) -> None:
    path = PCAPS / name
    if path.is_dir():
        path = sorted(path.glob("*.pcap*"))[0]
    _check(path)
