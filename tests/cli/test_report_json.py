"""The JSON report written record by record is byte for byte what the whole-model serializer gives."""

import io
from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline import report_json
from callqual.pipeline.compact_outputs import CompactOutputs
from callqual.pipeline.embedded import EmbeddedPipeline, _Outputs, analyze_file
from callqual.pipeline.report_json import element_json, write_report_json
from callqual.schemas import Alert
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


def _alert(alert_id: str, first_ts: float, summary: str) -> Alert:
    return Alert(
        alert_id=alert_id,
        rule="packet_loss",
        severity="warning",
        call_id=f"call-{alert_id}",
        source_ip="192.0.2.1",
        first_ts=first_ts,
        last_ts=first_ts + 1,
        summary=summary,
    )


def test_compact_outputs_replace_a_refined_alert_in_place_as_the_models_do() -> None:
    """A mid-call alert and its refinement at the call's end share an id: the later one is kept."""
    sequence = [
        _alert("b", 5.0, "mid-call"),
        _alert("a", 5.0, "other"),
        _alert("b", 5.0, "refined at the end"),
        _alert("c", 1.0, "earlier"),
    ]
    models, compact = _Outputs(), CompactOutputs()
    for alert in sequence:
        models.add(alert)
        compact.add(alert)
    ordered = sorted(models.alerts, key=lambda a: (a.first_ts, a.rule, a.alert_id))
    assert [a.summary for a in ordered] == ["earlier", "other", "refined at the end"]
    assert compact.sorted_lists()["alerts"] == [element_json(a) for a in ordered]


class _CountingBytes(io.BytesIO):
    writes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)


@pytest.mark.parametrize("per_write", [1, 2, 3, report_json.ELEMENTS_PER_WRITE])
def test_elements_are_joined_into_few_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_write: int
) -> None:
    """A list's elements go out ``ELEMENTS_PER_WRITE`` at a time (stdout may be unbuffered), same bytes."""
    path = tmp_path / "demo.pcap"
    simulate("demo", path)
    report = analyze_file(path)
    monkeypatch.setattr(report_json, "ELEMENTS_PER_WRITE", per_write)
    out = _CountingBytes()
    write_report_json(report, out)
    assert out.getvalue() == (report.model_dump_json(indent=2) + "\n").encode()
    lists = [len(report.calls), len(report.streams), len(report.alerts)]
    assert min(lists) > 3
    # per list: what precedes it, its name, the opening with the first element, the rest joined,
    # the closing; then what follows the last list and the final newline
    joined = sum(-(-(n - 1) // per_write) for n in lists)
    assert out.writes == 3 * 4 + joined + 2
