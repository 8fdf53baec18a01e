"""The source stage exports its consumer lag on ``sources`` beside the call stage's on ``events``."""

import urllib.request
import uuid
from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.service import CollectorService, CollectorServiceSettings
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.service import (
    DetectorServiceSettings,
    kafka_service,
    kafka_source,
    kafka_source_stage,
    kafka_sources,
)
from callqual.observability.http_server import start_metrics_server
from callqual.simulator import simulate

pytestmark = pytest.mark.kafka


def test_both_stages_report_their_lag_on_one_metrics_page(kafka_bootstrap: str, tmp_path: Path) -> None:
    pcap = tmp_path / "security.pcap"
    simulate("security", pcap, seed=3)
    prefix = f"m{uuid.uuid4().hex[:8]}."
    collector = CollectorService(
        CollectorServiceSettings(pcap=pcap, bootstrap_servers=kafka_bootstrap, topic_prefix=prefix)
    )
    collector.connect()
    with open_capture(pcap) as capture:
        assert collector.run(capture) == 0
    settings = DetectorServiceSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, group_id=f"g{prefix}", exit_when_idle_s=3
    )
    metrics, server = start_metrics_server("127.0.0.1", 0)
    try:
        calls = kafka_service(settings, RuleSettings())
        calls.metrics = metrics
        assert calls.run(kafka_source(calls)) == 0
        calls.close()
        sources = kafka_source_stage(settings, RuleSettings())
        sources.metrics = metrics
        assert sources.run(kafka_sources(sources)) == 0
        sources.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    finally:
        server.close()
    assert calls.counters["calls_forwarded"] > 0
    assert sources.counters["calls"] == calls.counters["calls_forwarded"]  # each published once
    # Both caught up with their topic: nothing behind on either.
    assert f'callqual_consumer_lag_messages{{topic="{prefix}events"}} 0.0' in text
    assert f'callqual_consumer_lag_messages{{topic="{prefix}sources"}} 0.0' in text
