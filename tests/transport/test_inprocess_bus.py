"""The in-process bus: the embedded pipeline's transport."""

from __future__ import annotations

import threading
import time

import pytest

from callqual.schemas import SipMessageEvent
from callqual.transport import TOPICS, EventSink, EventSource, InProcessBus


def sip_event(call_id: str, frame: int) -> SipMessageEvent:
    return SipMessageEvent(
        frame=frame,
        ts=float(frame),
        src_ip="192.0.2.10",
        src_port=5060,
        dst_ip="198.51.100.20",
        dst_port=5060,
        transport="udp",
        first_line="BYE sip:bob@example.com SIP/2.0",
        is_request=True,
        method="BYE",
        call_id=call_id,
        size=300,
    )


def test_satisfies_the_transport_protocols() -> None:
    bus = InProcessBus()
    assert isinstance(bus.sink(), EventSink)
    assert isinstance(bus.source([TOPICS.sip]), EventSource)


def test_round_trip_in_order_through_json() -> None:
    bus = InProcessBus()
    sink, source = bus.sink(), bus.source([TOPICS.sip])
    sent = [sip_event(f"c{frame % 3}", frame) for frame in range(10)]
    for event in sent:
        sink.emit(TOPICS.sip, event.call_id, event)
    assert sink.flush(1.0) == 0
    received = [source.poll(0) for _ in sent]
    assert [m.offset for m in received if m is not None] == list(range(10))
    assert [SipMessageEvent.model_validate_json(m.value) for m in received if m is not None] == sent
    assert [m.key for m in received if m is not None] == [e.call_id for e in sent]
    assert source.poll(0) is None


def test_full_topic_drops_new_messages_and_counts_them() -> None:
    bus = InProcessBus(max_messages_per_topic=3)
    sink = bus.sink()
    for frame in range(5):
        sink.emit(TOPICS.sip, "c", sip_event("c", frame))
    sink.emit(TOPICS.media, "c", sip_event("c", 99))

    assert bus.dropped(TOPICS.sip) == 2
    assert bus.dropped(TOPICS.media) == 0
    assert bus.dropped() == 2
    assert bus.emitted(TOPICS.sip) == 3
    assert bus.depth(TOPICS.sip) == 3
    # The oldest are kept: what was already accepted is never lost to a later burst.
    source = bus.source([TOPICS.sip])
    frames = []
    while (message := source.poll(0)) is not None:
        frames.append(SipMessageEvent.model_validate_json(message.value).frame)
    assert frames == [0, 1, 2]
    # Room again once consumed.
    sink.emit(TOPICS.sip, "c", sip_event("c", 5))
    assert bus.depth(TOPICS.sip) == 1
    assert bus.dropped(TOPICS.sip) == 2


def test_poll_waits_for_a_message_from_another_thread() -> None:
    bus = InProcessBus()
    source = bus.source([TOPICS.sip, TOPICS.media])
    timer = threading.Timer(0.1, lambda: bus.sink().emit(TOPICS.media, None, sip_event("c", 1)))
    timer.start()
    t0 = time.monotonic()
    message = source.poll(5.0)
    timer.join()
    assert message is not None and message.topic == TOPICS.media
    assert time.monotonic() - t0 < 4.0


def test_poll_times_out_and_reads_topics_fairly() -> None:
    bus = InProcessBus()
    source = bus.source([TOPICS.sip, TOPICS.media])
    t0 = time.monotonic()
    assert source.poll(0.05) is None
    assert time.monotonic() - t0 >= 0.04
    sink = bus.sink()
    for frame in range(3):
        sink.emit(TOPICS.sip, "c", sip_event("c", frame))
        sink.emit(TOPICS.media, "c", sip_event("c", 10 + frame))
    topics = [m.topic for m in iter(lambda: source.poll(0), None)]
    assert topics == [TOPICS.sip, TOPICS.media] * 3


def test_invalid_bounds_and_closed_source() -> None:
    with pytest.raises(ValueError):
        InProcessBus(max_messages_per_topic=0)
    bus = InProcessBus()
    with pytest.raises(ValueError):
        bus.source([])
    source = bus.source([TOPICS.sip])
    source.close()
    with pytest.raises(RuntimeError):
        source.poll(0)
