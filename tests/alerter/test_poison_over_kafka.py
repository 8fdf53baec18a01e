"""The alerter on a real broker survives poison messages: counted, dead-lettered, the next call notified."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from callqual.alerter.service import build_service, record_topics
from callqual.alerter.settings import AlerterSettings
from callqual.observability.metrics import AlerterMetrics
from callqual.pipeline.embedded import analyze_file
from callqual.transport.kafka import KafkaEventSink, KafkaEventSource, ensure_service_topics
from callqual.transport.settings import KafkaSettings
from tests.alerter.receiver import Receiver, free_port
from tests.pipeline.test_kafka_pipeline import read_topic
from tests.shared_captures import PCAPS

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

#: (topic attribute, value): each one once killed the loop or must be refused by the schema
POISON = [
    ("calls", b"[]"),  # was: AttributeError ('list' has no .get), the alerter's loop thread died
    ("calls", b"null"),
    ("calls", b"{not json"),
    ("calls", b"\xff\xfe not utf-8"),
    ("calls", b'{"kind": "nope"}'),
    ("calls", b'{"kind": "call_record"}'),
    ("streams", b'"a string"'),
    ("alerts", b"[1, 2]"),
    ("alerts", b'{"kind": "alert", "first_ts": NaN}'),
]


def _wait(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_poison_messages_are_dead_lettered_and_the_next_call_is_notified(kafka_bootstrap: str) -> None:
    report = analyze_file(PCAPS / "rtp-pcap/aaa.pcap")
    alert = report.alerts[0]
    call = next(c for c in report.calls if c.call_id == alert.call_id)
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"a{uuid.uuid4().hex[:8]}.", partitions=1
    )
    topics = kafka.topics()
    ensure_service_topics(kafka, topics.pipeline())
    raw = Producer({"bootstrap.servers": kafka_bootstrap})
    for attr, value in POISON:
        raw.produce(getattr(topics, attr), value=value)
    assert raw.flush(30) == 0
    sink = KafkaEventSink(kafka)
    sink.emit(topics.calls, call.call_id, call)
    sink.emit(topics.alerts, alert.alert_id, alert)
    assert sink.flush(30) == 0

    http = Receiver(free_port()).start()
    metrics = AlerterMetrics(CollectorRegistry())
    service = build_service(
        AlerterSettings(webhook_url=http.url, group_wait_s=3), metrics, dead_letter=sink, topics=topics
    )
    source = KafkaEventSource(kafka, [topics.alerts, *record_topics(topics)], group_id=f"g{uuid.uuid4().hex}")
    stop = threading.Event()
    loop = threading.Thread(target=service.run, args=(source, stop), kwargs={"poll_s": 0.1})
    service.notifier.start()
    loop.start()
    try:
        _wait(lambda: len(http.requests) >= 1)
        _wait(lambda: metrics.parse_errors.labels(reason="alerter.undecodable")._value.get() == len(POISON))
        assert loop.is_alive() and service.healthy()
        doc = json.loads(http.requests[0].body)
        assert [a["alert_id"] for a in doc["alerts"]] == [alert.alert_id]
        assert doc["alerts"][0]["call"]["call_id"] == call.call_id  # the call record was applied too
    finally:
        stop.set()
        loop.join(10)
        service.notifier.close(5)
        source.close()
        http.stop()
    assert sink.flush(30) == 0
    sink.close()
    letters = [json.loads(v) for v, _ in read_topic(kafka_bootstrap, topics.deadletter)]
    assert sorted((d["topic"], d["offset"]) for d in letters) == sorted(
        (getattr(topics, attr), i) for attr, i in _offsets(POISON)
    )
    assert all(
        d["reason"] == "alerter.undecodable" and d["error"].startswith("ValidationError") for d in letters
    )


def _offsets(poison: list[tuple[str, bytes]]) -> list[tuple[str, int]]:
    """Each poison message's offset: its rank among those produced to its topic."""
    seen: dict[str, int] = {}
    out = []
    for attr, _ in poison:
        out.append((attr, seen.get(attr, 0)))
        seen[attr] = seen.get(attr, 0) + 1
    return out
