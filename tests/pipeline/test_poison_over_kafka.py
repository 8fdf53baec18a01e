"""The collector and detector services on a real broker: a message they cannot handle is counted,
dead-lettered with where it came from, and the next good call is still reported."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from callqual.collector.packet import Frame
from callqual.fuzz.corpus import pcap_bytes
from callqual.fuzz.driver import load_capture
from callqual.fuzz.events import events_of
from callqual.fuzz.mutators import with_header_line
from callqual.pipeline.embedded import analyze_file
from callqual.transport.kafka import ensure_service_topics
from callqual.transport.settings import KafkaSettings
from callqual.transport.topics import Topics
from tests.alerter.receiver import free_port
from tests.pipeline.test_kafka_pipeline import _callqual, collector, detector, finish, outputs, read_topic
from tests.shared_captures import PCAPS

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

GOOD_CALL = PCAPS / "rtp-pcap/sip-rtp-g722.pcap"


def _poison() -> list[tuple[bytes, list[tuple[str, bytes | None]]]]:
    """(value, headers) of messages a foreign or broken producer could put on the events topic."""
    event = events_of(load_capture(GOOD_CALL).frames)[0]
    return [
        (b"{not json", []),
        (b"[]", [("seq", b"1"), ("clock", b"1.0")]),
        (b"\xff\xfe not utf-8", [("clock", None), ("seq", None)]),  # was: TypeError, float(None)
        (json.dumps({**event, "ts": math.nan}).encode(), [("clock", b"nan"), ("seq", b"0")]),
        (b"{}", [("callqual-marker", b"\xff")]),  # was: UnicodeDecodeError on the marker's name
        (json.dumps({**event, "kind": "sip_massage"}).encode(), []),
    ]


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, Any]]) -> list[tuple[int, int]]:
    """Produce one message per partition in turn; their (partition, offset)."""
    producer = Producer({"bootstrap.servers": bootstrap})
    positions: list[tuple[int, int]] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        positions.append((msg.partition(), msg.offset()))

    for i, (value, headers) in enumerate(messages):
        producer.produce(topic, value=value, headers=headers, partition=i % 3, on_delivery=delivered)
    assert producer.flush(30) == 0
    return positions


def _metric(port: int, line_start: str) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_detector_dead_letters_poison_and_reports_the_next_call(kafka_bootstrap: str) -> None:
    prefix = f"p{uuid.uuid4().hex[:10]}."
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=3)
    topics = kafka.topics()
    ensure_service_topics(kafka, topics.pipeline())
    poison = _poison()
    positions = _produce(kafka_bootstrap, topics.events, poison)
    code, log = finish(collector(kafka_bootstrap, prefix, GOOD_CALL))
    assert code == 0, log[-3:]

    port = free_port()
    det = subprocess.Popen(
        _callqual(
            *("detector", "--bootstrap-servers", kafka_bootstrap, "--topic-prefix", prefix),
            *("--group-id", f"g{prefix}", "--partitions", "3", "--exit-when-idle", "8"),
            *("--metrics-port", str(port)),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CALLQUAL_KAFKA_SESSION_TIMEOUT_MS": "6000"},
    )
    try:
        counted = None
        deadline = time.monotonic() + 90
        while counted != len(poison) and time.monotonic() < deadline and det.poll() is None:
            time.sleep(0.3)
            counted = _metric(port, 'callqual_parse_errors_total{reason="detector.undecodable"}')
        assert counted == len(poison)
    finally:
        code, dlog = finish(det)
    assert code == 0, dlog[-3:]
    stopped = next(line for line in reversed(dlog) if line["msg"] == "detector stopped")
    assert stopped["undecodable"] == len(poison) and stopped["apply_failed"] == 0

    calls, _ = outputs(kafka_bootstrap, prefix)
    assert calls == analyze_file(GOOD_CALL).calls
    letters = [json.loads(v) for v, _ in read_topic(kafka_bootstrap, topics.deadletter)]
    assert sorted((d["partition"], d["offset"]) for d in letters) == sorted(positions)
    assert {d["reason"] for d in letters} == {"detector.undecodable"}
    assert all(d["topic"] == topics.events and d["error"] for d in letters)


def test_collector_dead_letters_an_event_too_large_to_publish_and_goes_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """An INVITE padded past the producer's message.max.bytes: was a KafkaException that ended the run."""
    first, second = load_capture(GOOD_CALL), load_capture(PCAPS / "rtp-pcap/sip-rtp-g729a.pcap")
    invite = first.frames[first.sip_frames[0]]
    padded = with_header_line(invite, b"X-Padding: " + b"p" * 30_000)
    assert padded is not None
    shift = first.frames[-1].ts + 2.0 - second.frames[0].ts
    frames = [padded if f is invite else f for f in first.frames]
    frames += [Frame(f.number, f.ts + shift, f.linktype, f.data, f.orig_len) for f in second.frames]
    capture = tmp_path / "two-calls.pcap"
    capture.write_bytes(pcap_bytes(frames))
    next_call = next(c for c in analyze_file(capture).calls if c.call_id == "1-24411@10.0.2.20")

    prefix, port = f"p{uuid.uuid4().hex[:10]}.", free_port()
    col = subprocess.Popen(
        _callqual(
            *("collector", "--pcap", str(capture), "--bootstrap-servers", kafka_bootstrap),
            *("--topic-prefix", prefix, "--partitions", "3", "--pace", "2", "--metrics-port", str(port)),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CALLQUAL_KAFKA_MESSAGE_MAX_BYTES": "16384"},
    )
    try:
        counted = None
        deadline = time.monotonic() + 60
        while counted != 1 and time.monotonic() < deadline and col.poll() is None:
            time.sleep(0.2)
            counted = _metric(port, 'callqual_parse_errors_total{reason="collector.too_large"}')
        assert counted == 1
    finally:
        code, log = finish(col)
    assert code == 0, log[-3:]
    assert log[-1]["msg"] == "collector finished" and log[-1]["dead_lettered"] == 1 and log[-1]["lost"] == 0

    (letter,) = [json.loads(v) for v, _ in read_topic(kafka_bootstrap, Topics.with_prefix(prefix).deadletter)]
    assert letter["reason"] == "collector.too_large" and "MSG_SIZE_TOO_LARGE" in letter["error"]
    assert letter["frame"] == 1 and letter["event_kind"] == "sip_message"
    assert letter["key"] == "1-2161@10.0.2.20"

    code, dlog = finish(detector(kafka_bootstrap, prefix, f"g{prefix}"))
    assert code == 0, dlog[-3:]
    calls, _ = outputs(kafka_bootstrap, prefix)
    assert next(c for c in calls if c.call_id == next_call.call_id) == next_call
