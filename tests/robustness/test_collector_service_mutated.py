"""The collector service on a real broker: a capture other tools damaged, and a frame its code fails on.

The damaged capture (``editcap -E``: random byte errors) must run to the end
and publish exactly what ``callqual analyze``'s collector makes of it. A frame
the collector's code fails on must be counted (callqual_parse_errors_total{
reason="internal.<Type>"}), dead-lettered with its bytes, and the rest published.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.service import CollectorService, CollectorServiceSettings, frames_of
from callqual.fuzz.other_tools import damaging
from callqual.schemas import AnyEvent
from callqual.transport.kafka import KafkaEventSink, ensure_service_topics
from callqual.transport.settings import KafkaSettings
from callqual.transport.topics import Topics
from tests.pipeline.test_kafka_pipeline import collector, finish, read_topic
from tests.shared_captures import PCAPS

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CAPTURE = PCAPS / "heplify/rtp_rtcp_sip_ipv4_udp.pcap"


def _damaged(tmp_path: Path) -> Path:
    (mutation,) = [m for m in damaging(PCAPS / "heplify/ipip0.pcap") if m.name == "editcap -E 0.01"]
    out = tmp_path / "damaged.pcap"
    mutation.apply(CAPTURE, out)
    return out


def _collector_events(path: Path) -> list[AnyEvent]:
    out: list[AnyEvent] = []
    core = Collector(out.append)
    with open_capture(path) as capture:
        core.run(capture)
    core.finish()
    return out


def test_a_damaged_capture_runs_to_the_end_and_publishes_everything(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    damaged = _damaged(tmp_path)
    prefix = f"h{uuid.uuid4().hex[:10]}."
    code, log = finish(collector(kafka_bootstrap, prefix, damaged))
    assert code == 0, log[-3:]
    last = log[-1]
    assert last["msg"] == "collector finished" and last["frames"] == 4269 and last["lost"] == 0
    published = [json.loads(v) for v, _ in read_topic(kafka_bootstrap, Topics.with_prefix(prefix).events)]
    events = [e for e in published if e.get("kind") not in ("watermark", "end")]
    expected = _collector_events(damaged)
    assert len(events) == len(expected) > 100
    assert sorted(e["kind"] for e in events) == sorted(e.kind for e in expected)


class _RefusesFrame(KafkaEventSink):
    """The real Kafka sink, except that sending the event of ``frame`` to ``topic`` raises (a bug there)."""

    def __init__(self, kafka: KafkaSettings, topic: str, frame: int) -> None:
        super().__init__(kafka)
        self.topic = topic
        self.frame = frame

    def send(self, topic: str, value: bytes, **kwargs: Any) -> bool:
        if topic == self.topic and json.loads(value).get("frame") == self.frame:
            raise ValueError(f"cannot send frame {self.frame}")
        return super().send(topic, value, **kwargs)


def _metric(port: int, name: str) -> float | None:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_frame_the_collector_fails_on_is_counted_and_dead_lettered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    damaged = _damaged(tmp_path)
    expected = _collector_events(damaged)
    invite = next(e for e in expected if e.kind == "sip_message" and e.method == "INVITE")
    prefix = f"h{uuid.uuid4().hex[:10]}."
    settings = CollectorServiceSettings(
        pcap=damaged, bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=3
    )
    kafka = settings.kafka()
    topics = kafka.topics()
    ensure_service_topics(kafka, topics.pipeline())
    service = CollectorService(settings, sink=_RefusesFrame(kafka, topics.events, invite.frame))
    service.connect()
    port = service.start_metrics("127.0.0.1", 0)
    try:
        with open_capture(damaged) as capture:
            assert service.run(frames_of(capture, service)) == 0
        assert service.collector.errors["internal.ValueError"] == 1
        reason = 'callqual_parse_errors_total{reason="internal.ValueError"'
        assert _metric(port, reason) == 1.0
    finally:
        assert service.metrics_server is not None
        service.metrics_server.close()

    (letter,) = [json.loads(v) for v, _ in read_topic(kafka_bootstrap, topics.deadletter)]
    with open_capture(damaged) as capture:
        data = next(f.data for f in capture if f.number == invite.frame)
    assert letter["kind"] == "collector_frame_failed" and letter["reason"] == "internal.ValueError"
    assert (letter["frame"], bytes.fromhex(letter["data_hex"]), letter["cut"]) == (invite.frame, data, False)
    assert letter["error"] == f"ValueError: cannot send frame {invite.frame}"
    published: Sequence[tuple[bytes, Any]] = read_topic(kafka_bootstrap, topics.events)
    events = [json.loads(v) for v, _ in published]
    events = [e for e in events if e.get("kind") not in ("watermark", "end")]
    # What the collector made of that frame is lost with it (here a malformed-SIP event, then the message).
    rest = [e for e in expected if getattr(e, "frame", None) != invite.frame]
    assert len(events) == len(rest) < len(expected)
