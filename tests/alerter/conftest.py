"""Shared helpers of the alerter tests: alerts, call records and the demo analysis."""

from __future__ import annotations

from pathlib import Path

import pytest

from callqual.pipeline.embedded import analyze_file
from callqual.schemas import Alert, AnalysisReport
from callqual.simulator import simulate


def make_alert(
    alert_id: str,
    *,
    rule: str = "call_failed",
    severity: str = "warning",
    call_id: str | None = "c1@host",
    source_ip: str | None = "10.0.0.1",
    ts: float = 1_700_000_000.0,
) -> Alert:
    return Alert(
        alert_id=alert_id,
        rule=rule,
        severity=severity,  # type: ignore[arg-type]
        call_id=call_id,
        source_ip=source_ip,
        first_ts=ts,
        last_ts=ts + 1,
        summary=f"{rule} {alert_id}",
        details={"final_status": 503, "loss_ratio": 0.1},
    )


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> AnalysisReport:
    path = tmp_path_factory.mktemp("demo") / "demo.pcap"
    simulate("demo", Path(path), seed=7)
    return analyze_file(path)
