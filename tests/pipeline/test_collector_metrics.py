"""The collector service serves its own pipeline-health metrics while it publishes to Kafka."""

import urllib.request
import uuid
from pathlib import Path

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.service import CollectorService, CollectorServiceSettings
from callqual.simulator import simulate


def _sample(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_collector_metrics_count_frames_parse_errors_and_kafka_queue(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    pcap = tmp_path / "demo.pcap"
    simulate("demo", pcap, seed=5)
    settings = CollectorServiceSettings(
        pcap=pcap, bootstrap_servers=kafka_bootstrap, topic_prefix=f"m{uuid.uuid4().hex[:8]}."
    )
    service = CollectorService(settings)
    port = service.start_metrics("127.0.0.1", 0)
    try:
        service.connect()
        with open_capture(pcap) as capture:
            assert service.run(capture) == 0
            frames = service.collector.frames
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            assert resp.status == 200
    finally:
        assert service.metrics_server is not None
        service.metrics_server.close()
    assert _sample(text, "callqual_packets_captured_total") == frames > 10_000
    skipped = service.collector.all_skipped()
    assert _sample(text, "callqual_skipped_total") == sum(skipped.values())
    assert 'callqual_kafka_producer_queue_messages{service="collector"}' in text


def test_detector_metrics_report_lag_and_active_calls(kafka_bootstrap: str, tmp_path: Path) -> None:
    from callqual.detector.rules.settings import RuleSettings
    from callqual.detector.service import DetectorServiceSettings, kafka_service, kafka_source

    pcap = tmp_path / "demo.pcap"
    simulate("demo", pcap, seed=6)
    prefix = f"d{uuid.uuid4().hex[:8]}."
    collector = CollectorService(
        CollectorServiceSettings(pcap=pcap, bootstrap_servers=kafka_bootstrap, topic_prefix=prefix)
    )
    collector.connect()
    with open_capture(pcap) as capture:
        assert collector.run(capture) == 0
    detector = kafka_service(
        DetectorServiceSettings(
            bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, group_id=f"g{prefix}", exit_when_idle_s=3
        ),
        RuleSettings(),
    )
    port = detector.start_metrics("127.0.0.1", 0)
    try:
        assert detector.run(kafka_source(detector)) == 0
        detector.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    finally:
        assert detector.metrics_server is not None
        detector.metrics_server.close()
    assert detector.counters["outputs"] > 0
    # Caught up with the topic and every call of the capture finished: nothing behind, none open.
    assert f'callqual_consumer_lag_messages{{topic="{prefix}events"}} 0.0' in text
    assert "callqual_active_calls 0.0" in text
