"""The JSON report written record by record is byte for byte what the whole-model serializer gives."""

import io
from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline, analyze_file
from callqual.pipeline.report_json import write_report_json
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


def _json_of(path: Path, *, compact: bool) -> bytes:
    pipeline = EmbeddedPipeline(compact_outputs=compact)
    with open_capture(path) as capture:
        pipeline.run(capture)
        pipeline.finish()
        out = io.BytesIO()
        pipeline.write_json_report(out, str(path), capture.truncated, capture.errors)
    return out.getvalue()


def test_compact_outputs_write_the_same_report(tmp_path: Path) -> None:
    """What ``analyze --format json`` keeps (records as JSON) reports exactly what the models do."""
    path = tmp_path / "demo.pcap"
    simulate("demo", path)
    compact = _json_of(path, compact=True)
    assert compact == _json_of(path, compact=False)
    assert compact == (analyze_file(path).model_dump_json(indent=2) + "\n").encode()
    with pytest.raises(TypeError):
        EmbeddedPipeline(compact_outputs=True).report("x")
