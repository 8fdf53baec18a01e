"""The Kafka adapters against a real broker (see tests/kafka_broker.py for where it comes from)."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from callqual.schemas import SipMessageEvent, parse_event
from callqual.transport import EventSink, EventSource, Message, Topics, TransportError
from callqual.transport.kafka import KafkaEventSink, KafkaEventSource, admin_client, ensure_topics
from callqual.transport.settings import KafkaSettings

pytestmark = pytest.mark.kafka


def sip_event(call_id: str, frame: int) -> SipMessageEvent:
    return SipMessageEvent(
        frame=frame,
        ts=1_700_000_000.0 + frame / 1000,
        src_ip="192.0.2.10",
        src_port=5060,
        dst_ip="198.51.100.20",
        dst_port=5060,
        transport="udp",
        first_line="INVITE sip:bob@example.com SIP/2.0",
        is_request=True,
        method="INVITE",
        request_uri="sip:bob@example.com",
        call_id=call_id,
        cseq_num=frame,
        cseq_method="INVITE",
        from_uri="sip:alice@example.com",
        from_tag=f"tag-{frame}",
        size=400 + frame,
    )


@pytest.fixture
def settings(kafka_bootstrap: str) -> KafkaSettings:
    # A fresh prefix and group per test: tests share one broker and must not
    # see each other's messages or committed offsets.
    tag = uuid.uuid4().hex[:10]
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        client_id=f"test-{tag}",
        topic_prefix=f"t{tag}.",
        group_id=f"g{tag}",
        partitions=3,
        linger_ms=5,
    )


@pytest.fixture
def admin(settings: KafkaSettings) -> AdminClient:
    return admin_client(settings)


@pytest.fixture
def topics(settings: KafkaSettings, admin: AdminClient) -> Topics:
    topics = settings.topics()
    ensure_topics(admin, topics.all(), settings.partitions, settings.replication)
    return topics


@pytest.fixture
def sink(settings: KafkaSettings) -> Iterator[KafkaEventSink]:
    sink = KafkaEventSink(settings)
    yield sink
    sink.close()


def drain(source: EventSource, count: int, timeout: float = 30.0) -> list[Message]:
    """Poll until ``count`` messages arrived; fail with what did arrive on timeout."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        message = source.poll(0.5)
        if message is not None:
            got.append(message)
    assert len(got) == count, f"got {len(got)} of {count} messages within {timeout}s"
    return got


def test_adapters_satisfy_the_transport_protocols(settings: KafkaSettings, topics: Topics) -> None:
    sink = KafkaEventSink(settings)
    source = KafkaEventSource(settings, [topics.sip])
    try:
        assert isinstance(sink, EventSink)
        assert isinstance(source, EventSource)
    finally:
        source.close()
        sink.close()


def test_ensure_topics_is_idempotent(settings: KafkaSettings, admin: AdminClient) -> None:
    names = settings.topics().all()
    assert ensure_topics(admin, names, 3, 1) == sorted(names)
    assert ensure_topics(admin, names, 3, 1) == []
    # A different partition count does not touch existing topics.
    assert ensure_topics(admin, [*names, names[0]], 5, 1) == []
    metadata = admin.list_topics(timeout=10).topics
    for name in names:
        assert len(metadata[name].partitions) == 3


def test_events_round_trip_equal_and_in_order_per_call(
    settings: KafkaSettings, topics: Topics, sink: KafkaEventSink
) -> None:
    call_ids = [f"call-{i}@example.com" for i in range(6)]
    sent = [sip_event(call_ids[frame % len(call_ids)], frame) for frame in range(120)]
    for event in sent:
        sink.emit(topics.sip, event.call_id, event)
    assert sink.flush(30) == 0
    assert (sink.stats.emitted, sink.stats.delivered, sink.stats.failed, sink.stats.dropped) == (
        120,
        120,
        0,
        0,
    )

    source = KafkaEventSource(settings, [topics.sip])
    try:
        received = drain(source, len(sent))
        for message in received:
            source.ack(message)
    finally:
        source.close()

    # The kind discriminator survives the wire, so consumers can dispatch on it.
    assert all(isinstance(parse_event(m.value), SipMessageEvent) for m in received)
    decoded = [SipMessageEvent.model_validate_json(m.value) for m in received]
    assert sorted(decoded, key=lambda e: e.frame) == sent
    by_key: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for message, event in zip(received, decoded, strict=True):
        assert isinstance(event, SipMessageEvent)
        assert message.key == event.call_id
        by_key[event.call_id].append(event.frame)
        partitions[event.call_id].add(message.partition)
    for call_id in call_ids:
        assert by_key[call_id] == [e.frame for e in sent if e.call_id == call_id]
        assert len(partitions[call_id]) == 1, "one call's events must share a partition"
    # Six keys over three partitions: the keys are really spread, not all on one.
    assert len(set().union(*partitions.values())) > 1


@pytest.mark.parametrize("group_protocol", ["classic", "consumer"])
def test_group_redelivers_only_unacknowledged_messages(
    settings: KafkaSettings, admin: AdminClient, sink: KafkaEventSink, group_protocol: str
) -> None:
    # Both rebalance protocols: "consumer" (KIP-848) is what Kafka 4.x brokers
    # favour, "classic" what older clusters speak.
    settings = settings.model_copy(update={"group_protocol": group_protocol})
    topic = f"{settings.topic_prefix}atleastonce"
    ensure_topics(admin, [topic], 1, 1)
    sent = [sip_event("call-x@example.com", frame) for frame in range(10)]
    for event in sent:
        sink.emit(topic, event.call_id, event)
    assert sink.flush(30) == 0

    first = KafkaEventSource(settings, [topic])
    try:
        received = drain(first, 10)
        # Only the first six were applied before the "crash".
        for message in received[:6]:
            first.ack(message)
    finally:
        first.close()

    second = KafkaEventSource(settings, [topic])
    try:
        redelivered = drain(second, 4)
        assert [m.offset for m in redelivered] == [m.offset for m in received[6:]]
        assert [SipMessageEvent.model_validate_json(m.value) for m in redelivered] == sent[6:]
        for message in redelivered:
            second.ack(message)
    finally:
        second.close()

    # Everything is acknowledged now: a new member sees only what comes next.
    marker = sip_event("call-x@example.com", 999)
    sink.emit(topic, marker.call_id, marker)
    assert sink.flush(30) == 0
    third = KafkaEventSource(settings, [topic])
    try:
        (after,) = drain(third, 1)
        assert SipMessageEvent.model_validate_json(after.value) == marker
        assert third.poll(1.0) is None
    finally:
        third.close()


def test_full_local_buffer_drops_and_counts(kafka_bootstrap: str) -> None:
    # A tiny buffer and a long linger keep messages local, so the bound is hit
    # deterministically whatever the broker's speed.
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, buffer_max_messages=5, linger_ms=10_000)
    sink = KafkaEventSink(settings)
    topic = f"t{uuid.uuid4().hex[:10]}.sip"
    admin = admin_client(settings)
    ensure_topics(admin, [topic], 1, 1)
    for frame in range(8):
        sink.emit(topic, "call-y@example.com", sip_event("call-y@example.com", frame))
    assert (sink.stats.emitted, sink.stats.dropped) == (5, 3)
    assert sink.flush(30) == 0
    assert sink.stats.delivered == 5
    assert sink.close() == 0


def test_close_purges_what_it_cannot_deliver_in_time(settings: KafkaSettings, topics: Topics) -> None:
    sink = KafkaEventSink(settings.model_copy(update={"linger_ms": 60_000}))
    for frame in range(3):
        sink.emit(topics.sip, "c", sip_event("c", frame))
    assert sink.close(timeout=0) == 3
    assert (sink.stats.delivered, sink.stats.failed) == (0, 3)
    with pytest.raises(TransportError, match="closed"):
        sink.emit(topics.sip, "c", sip_event("c", 3))


def test_fatal_producer_error_stops_emit(settings: KafkaSettings, topics: Topics) -> None:
    sink = KafkaEventSink(settings)
    sink.emit(topics.sip, "c", sip_event("c", 1))
    assert sink.flush(30) == 0
    # librdkafka raises fatal errors (e.g. lost idempotence state) through error_cb.
    sink._on_error(KafkaError(KafkaError._FENCED, "fenced in a test", fatal=True))
    with pytest.raises(TransportError, match="fatal"):
        sink.emit(topics.sip, "c", sip_event("c", 2))
    assert sink.stats.fatal and sink.stats.emitted == 1
    sink.close()
