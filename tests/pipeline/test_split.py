"""``analyze --split`` (collector in a child process) must report exactly what the one-process run reports."""

from pathlib import Path

import pytest

from callqual.cli.main import main
from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.split import SplitPipelineError, _dumps, run_split
from callqual.schemas import AnalysisReport, SdpMedia
from tests.shared_captures import PCAPS

_CAPTURES = sorted(
    str(p.relative_to(PCAPS)) for p in PCAPS.glob("*/*") if p.suffix in (".pcap", ".pcapng", ".cap")
)


def _report(capture: Path, tmp_path: Path, fmt: str, *split: str) -> tuple[int, bytes]:
    out = tmp_path / f"report-{fmt}{''.join(split)}"
    code = main(["analyze", str(capture), "--format", fmt, "--no-progress", "-o", str(out), *split])
    return code, out.read_bytes()


@pytest.mark.parametrize("name", _CAPTURES)
def test_split_report_is_byte_identical_on_every_shared_capture(name: str, tmp_path: Path) -> None:
    one = _report(PCAPS / name, tmp_path, "json")
    assert _report(PCAPS / name, tmp_path, "json", "--split") == one
    assert AnalysisReport.model_validate_json(one[1]).summary.frames > 0


def test_shared_captures_cover_media_signalling_and_alerts() -> None:
    """The parametrised comparison above is only worth something if the captures hold all three."""
    assert len(_CAPTURES) > 30
    whole = [
        AnalysisReport.model_validate(_in_process(PCAPS / n).model_dump())
        for n in ("rtp-pcap/SIP_DTMF2.pcap", "rtp-pcap/aaa.pcap")
    ]
    assert sum(r.summary.streams for r in whole) > 0
    assert sum(r.summary.calls for r in whole) > 1
    assert sum(r.summary.alerts for r in whole) > 0


def _in_process(path: Path) -> AnalysisReport:
    pipeline = EmbeddedPipeline()
    with open_capture(path) as capture:
        pipeline.run(capture)
        pipeline.finish()
        return pipeline.report(str(path), capture.truncated, capture.errors)


def test_text_report_and_a_truncated_capture(tmp_path: Path) -> None:
    data = (PCAPS / "rtp-pcap/sip-rtp-g722.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3 + 7])
    one = _report(cut, tmp_path, "text")
    assert one[0] == 4  # truncated: what was readable is analysed
    assert _report(cut, tmp_path, "text", "--split") == one
    assert b"CALLS (1" in one[1]


def test_models_cross_with_their_fields_set() -> None:
    """A model validated with defaults left out keeps that distinction across the pipe."""
    import pickle

    fields = {"media": "audio", "connection_ip": None, "port": 4000, "proto": "RTP/AVP", "payload_types": [0]}
    media = SdpMedia.model_validate(fields)
    back = pickle.loads(_dumps([media]))[0]
    assert back == media
    assert back.__pydantic_fields_set__ == media.__pydantic_fields_set__
    assert back.model_dump_json(exclude_unset=True) == media.model_dump_json(exclude_unset=True)


def test_a_failing_collector_is_an_error_with_its_traceback() -> None:
    pipeline = EmbeddedPipeline()
    with open_capture(PCAPS / "rtp-pcap/sip-rtp-g722.pcap") as capture:
        capture.close()  # the child then reads from a closed file
        with pytest.raises(SplitPipelineError, match="collector process failed"):
            run_split(pipeline, capture)


def test_split_and_workers_do_not_combine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two ways to use more cores; asking for both is a usage error (exit 2), not a silent choice."""
    out = tmp_path / "both.json"
    args = ["analyze", str(PCAPS / "sipp/g711a.pcap"), "--no-progress", "-o", str(out)]
    code = main([*args, "--split", "--workers", "2"])
    assert code == 2
    assert "pick one" in capsys.readouterr().err
    assert not out.exists() or out.read_bytes() == b""
