"""RtpStream.report builds its event with ``trusted`` (no validation): it must be what validation gives.

Checked on every report the collector emits for the shared captures (with
SDP and with RTP heuristics: interval and final reports, DTMF, codec
changes, re-INVITEs) and a simulated impaired capture (loss, jitter,
reordering): same model, same JSON bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.schemas import AnyEvent, RtpStreamReport
from callqual.simulator import simulate
from tests.shared_captures import PCAPS

CAPTURES = sorted(p for p in PCAPS.rglob("*") if p.suffix in {".pcap", ".pcapng"})


def _reports(path: Path, heuristic: bool) -> list[RtpStreamReport]:
    out: list[AnyEvent] = []
    collector = Collector(out.append, CollectorConfig(heuristic_rtp=heuristic))
    with open_capture(path) as capture:
        collector.run(capture)
    collector.finish()
    return [e for e in out if isinstance(e, RtpStreamReport)]


def _check(reports: list[RtpStreamReport]) -> None:
    for report in reports:
        validated = RtpStreamReport.model_validate(report.model_dump())
        assert report == validated
        assert report.model_dump_json() == validated.model_dump_json()


def test_shared_captures() -> None:
    total = 0
    for path in CAPTURES:
        for heuristic in (False, True):
            reports = _reports(path, heuristic)
            _check(reports)
            total += len(reports)
    assert total >= 100


@pytest.mark.parametrize("scenario", ["impaired", "demo"])
def test_simulated(tmp_path: Path, scenario: str) -> None:
    path = tmp_path / f"{scenario}.pcap"
    simulate(scenario, path, seed=4, **({"duration": 20.0} if scenario == "impaired" else {}))
    reports = _reports(path, False)
    assert len(reports) >= 10
    _check(reports)
