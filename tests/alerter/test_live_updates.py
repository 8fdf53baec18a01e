"""The alerter on a detector's live outputs: one notification per problem, active calls from call state."""

from pathlib import Path

from prometheus_client import CollectorRegistry

from callqual.alerter.metrics import AlerterMetrics
from callqual.alerter.service import build_service
from callqual.alerter.settings import AlerterSettings
from callqual.collector.capture.pcap_file import open_capture
from callqual.detector.detector import Detector
from callqual.detector.rule_engine import RuleEngine
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import Alert, CallRecord, CallStateUpdate, StreamRecord
from callqual.simulator.engine import simulate
from tests.detector.live_replay import filter_udp

Output = CallRecord | StreamRecord | Alert | CallStateUpdate
#: 12 s after the first call's answer (seed 7: 1709542804.6)
STOP_AT = 1709542817.0


def _outputs(tmp_path: Path) -> list[Output]:
    """Three 40 s calls; the callee of the first stops sending 12 s in (a mid-call one-way alert)."""
    clean = tmp_path / "clean.pcap"
    simulate("clean", clean, seed=7, calls=3, duration=40)
    cut = tmp_path / "cut.pcap"
    filter_udp(
        clean,
        cut,
        lambda ts, src, sport, dst, dport: not (src == "10.2.0.10" and sport != 5060 and ts > STOP_AT),
    )
    out: list[Output] = []
    pipeline = EmbeddedPipeline()
    pipeline.detector = Detector(out.append, RuleEngine(), on_call_state=out.append)
    with open_capture(cut) as capture:
        pipeline.run(capture)
        pipeline.finish()
    return out


def _value(metrics: AlerterMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_mid_call_alert_and_its_refinement_are_one_notification(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path)
    alerts = [o for o in outputs if isinstance(o, Alert)]
    assert [a.in_progress for a in alerts if a.rule == "one_way_audio"] == [True, False]
    metrics = AlerterMetrics(CollectorRegistry())
    service = build_service(AlerterSettings(), metrics)
    active: list[float] = []
    for out in outputs:
        service.handle_record(out)
        active.append(_value(metrics, "callqual_active_calls"))
    assert _value(metrics, "callqual_alerts_total", rule="one_way_audio", severity="critical") == 1.0
    assert _value(metrics, "callqual_alerts_duplicate_total") == 1.0
    pending = [a for g in service.grouper._groups.values() for a in g.sample]
    assert [a.in_progress for a in pending if a.rule == "one_way_audio"] == [True]
    # the three calls overlap: all three answered at once, none once their records came
    assert max(active) == 3.0 and active[-1] == 0.0
