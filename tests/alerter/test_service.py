"""The alerter service end to end on loopback: transport in, metrics and grouped webhooks out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from callqual.alerter.service import build_service
from callqual.alerter.settings import AlerterSettings
from callqual.observability.http_server import MetricsServer
from callqual.observability.metrics import AlerterMetrics
from callqual.schemas import AnalysisReport
from callqual.transport import TOPICS, InProcessBus
from tests.alerter.conftest import make_alert
from tests.alerter.receiver import Receiver, free_port


def wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_invite_flood_over_the_bus_is_one_webhook_call(demo_report: AnalysisReport) -> None:
    http = Receiver(free_port()).start()
    bus = InProcessBus(max_messages_per_topic=20_000)
    settings = AlerterSettings(webhook_url=http.url, group_wait_s=3, drain_timeout_s=5)
    metrics = AlerterMetrics(CollectorRegistry())
    service = build_service(settings, metrics, dead_letter=bus.sink())
    service.notifier.start()
    server = MetricsServer(metrics, port=0, healthy=service.healthy).start()
    stop = threading.Event()
    source = bus.source([TOPICS.alerts, TOPICS.calls])
    loop = threading.Thread(target=service.run, args=(source, stop), kwargs={"poll_s": 0.05})
    try:
        # The flood is on the bus before the alerter reads it: group_wait then covers all of it.
        sink = bus.sink()
        for call in demo_report.calls:
            sink.emit(TOPICS.calls, call.call_id, call)
        for i in range(10_000):
            sink.emit(
                TOPICS.alerts, None, make_alert(f"flood-{i}", call_id=f"x{i}", source_ip="198.51.100.7")
            )
        sink.emit(TOPICS.alerts, None, make_alert("flood-1"))  # an at-least-once replay
        bus.publish(TOPICS.alerts, None, b"{not json")  # a poison message
        loop.start()
        wait_for(lambda: len(http.requests) >= 1 and bus.depth(TOPICS.alerts) == 0)
        time.sleep(0.5)  # a little longer: nothing more may come
        assert len(http.requests) == 1
        doc = json.loads(http.requests[0].body)
        assert doc["count"] == 10_000 and doc["truncated"] and len(doc["alerts"]) == 10
        assert doc["distinct_sources"] == 1
        health = httpx.get(f"http://127.0.0.1:{server.port}/healthz")
        assert health.status_code == 200
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
        assert 'callqual_alerts_total{rule="call_failed",severity="warning"} 10000.0' in text
        assert "callqual_alerts_duplicate_total 1.0" in text
        assert 'callqual_parse_errors_total{reason="alerter.undecodable"} 1.0' in text
        assert 'callqual_webhook_deliveries_total{outcome="delivered",receiver="webhook"} 1.0' in text
        letter = bus.take([TOPICS.deadletter], 0)
        assert letter is not None and json.loads(letter.value)["kind"] == "alerter_undecodable"
    finally:
        stop.set()
        if loop.is_alive():
            loop.join(5)
        service.notifier.close(2)
        server.close()
        http.stop()
    assert not loop.is_alive()


def test_alerts_carry_call_context_from_call_records(demo_report: AnalysisReport) -> None:
    http = Receiver(free_port()).start()
    try:
        settings = AlerterSettings(webhook_url=http.url, group_wait_s=0)
        service = build_service(settings, AlerterMetrics(CollectorRegistry()))
        service.notifier.start()
        for call in demo_report.calls:
            service.handle_record(call)
        alert = next(a for a in demo_report.alerts if a.rule == "one_way_audio")
        service.handle_record(alert)
        (n,) = service.tick()
        service.notifier.close(5)
        doc = json.loads(http.requests[0].body)
        assert doc["alerts"][0]["call"]["call_id"] == alert.call_id == n.alerts[0].call_id
        assert doc["alerts"][0]["call"]["category"] == "one_way"
    finally:
        http.stop()


def test_cli_serves_the_demo_and_stops_on_sigterm(tmp_path: Path) -> None:
    from callqual.simulator import simulate

    capture = tmp_path / "demo.pcap"
    simulate("demo", capture, seed=3)
    http = Receiver(free_port()).start()
    port = free_port()
    env = {
        **os.environ,
        "CALLQUAL_ALERTER_WEBHOOK_SECRET": "cli-secret-value",
        "CALLQUAL_ALERTER_GROUP_WAIT_S": "0",
    }
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "callqual", "alerter"),
            *("--replay", str(capture), "--port", str(port), "--webhook-url", http.url),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz") == 200, 30)
        wait_for(lambda: len(http.requests) >= 5, 30)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'callqual_calls_total{category="ok",status_class="2xx"}' in text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        http.stop()
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert "cli-secret-value" not in err
    rules = {json.loads(r.body)["rule"] for r in http.requests}
    assert {"packet_loss", "call_failed", "one_way_audio"} <= rules


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return 0
