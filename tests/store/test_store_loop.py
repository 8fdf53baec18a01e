"""The store service's loop, in line and with its writer thread, over the in-process transport: the
same rows as ``analyze --store`` whatever the batching, every record acknowledged, and an idle
limit shorter than one write does not end the run early."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnalysisReport, AnyEvent, SipMessageEvent
from callqual.store.embedded import analyze_into_store
from callqual.store.service import StoreMetrics, StoreService, StoreSettings, build_engine
from callqual.transport import TOPICS, InProcessBus, Message
from callqual.transport.inprocess import InProcessSource
from tests.store.captures import capture
from tests.store.test_store_postgres import dump

NAME = "rtp-pcap/aaa.pcap"


class CountingSource(InProcessSource):
    """The in-process source, counting the messages acknowledged: an ack covers its message and
    every earlier one of its partition (the service acknowledges each partition's last)."""

    def __init__(self, bus: InProcessBus, topics: list[str]) -> None:
        super().__init__(bus, topics)
        self.polled: list[Message] = []
        self.highest: dict[tuple[str, int], int] = {}
        self.ack_calls = 0

    def poll(self, timeout: float) -> Message | None:
        message = super().poll(timeout)
        if message is not None:
            self.polled.append(message)
        return message

    def ack(self, message: Message) -> None:
        key = (message.topic, message.partition)
        assert message.offset > self.highest.get(key, -1), "acknowledged out of order"
        self.highest[key] = message.offset
        self.ack_calls += 1

    @property
    def acked(self) -> int:
        return sum(1 for m in self.polled if m.offset <= self.highest.get((m.topic, m.partition), -1))


def _analysed() -> tuple[list[AnyEvent], AnalysisReport]:
    """The capture's SIP messages and interval reports, as the collector publishes them, and its report."""
    kept: list[AnyEvent] = []

    def keep(event: AnyEvent) -> None:
        if event.kind == "sip_message" or (event.kind == "rtp_stream" and not event.final):
            kept.append(event)

    pipeline = EmbeddedPipeline(on_event=keep)
    with open_capture(capture(NAME)) as cap:
        pipeline.run(cap)
        pipeline.finish()
    return kept, pipeline.report(str(capture(NAME)))


def _publish(bus: InProcessBus) -> dict[str, int]:
    """What the collector and detector would publish for the capture; records per topic."""
    kept, report = _analysed()
    t = TOPICS
    topics = [
        (t.events, kept),
        (t.calls, report.calls),
        (t.streams, report.streams),
        (t.alerts, report.alerts),
    ]
    for topic, records in topics:
        for r in records:
            assert bus.publish(topic, r.call_id, r.model_dump_json().encode())
    return {topic: len(records) for topic, records in topics if records}


def _run_to_idle(
    bus: InProcessBus, settings: StoreSettings
) -> tuple[StoreService, CountingSource, StoreMetrics]:
    """``callqual store``'s loop over what ``bus`` holds, until it is idle; it must exit 0."""
    engine = build_engine(settings)
    metrics = StoreMetrics(CollectorRegistry())
    service = StoreService(engine, settings, metrics)
    source = CountingSource(bus, service.input_topics())
    try:
        assert service.run(source, threading.Event(), poll_s=0.05) == 0
    finally:
        engine.dispose()
    return service, source, metrics


@pytest.mark.parametrize(("in_flight", "batch_size"), [(0, 7), (1, 7), (3, 7), (3, 1000)])
def test_both_loops_store_what_analyze_stores(in_flight: int, batch_size: int, tmp_path: Path) -> None:
    bus = InProcessBus()
    published = _publish(bus)
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    # Shorter than any write: the loop stops only once nothing is left to read or write.
    settings = StoreSettings(
        url=url, batch_size=batch_size, exit_when_idle_s=0.001, writes_in_flight=in_flight, port=0
    )
    service, source, metrics = _run_to_idle(bus, settings)
    assert source.acked == sum(published.values()) > 50
    # Records at hand are read in goes, never past a full batch: at least this many transactions
    assert metrics.batches._value.get() >= -(-source.acked // batch_size)
    # one ack per partition and batch, not per record
    assert source.ack_calls <= len(published) * -(-source.acked // batch_size) + len(published)
    for topic, n in published.items():
        assert metrics.messages_consumed.labels(topic=topic)._value.get() == n
    assert service.pending_messages == 0 and metrics.batches_in_flight._value.get() == 0
    reference = f"sqlite:///{tmp_path / 'analyze.db'}"
    analyze_into_store(capture(NAME), reference)
    assert dump(url) == dump(reference)


@pytest.mark.parametrize("in_flight", [0, 3])
def test_retention_runs_in_both_loops(in_flight: int, tmp_path: Path) -> None:
    """With the writer thread, retention runs there, between batches (never racing a write)."""
    bus = InProcessBus()
    published = _publish(bus)
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    settings = StoreSettings(
        url=url,
        batch_size=7,
        exit_when_idle_s=0.3,
        writes_in_flight=in_flight,
        retention_days=1,
        retention_interval_s=0.01,
        port=0,
    )
    _, source, metrics = _run_to_idle(bus, settings)
    assert source.acked == sum(published.values())
    # All written (acknowledged only after commit), and the capture is years old: every row
    # was expired by a later retention run.
    rows = dump(url)
    assert rows["sip_messages"] == [] and rows["calls"] == []
    assert metrics.rows_expired._value.get() > 0


@pytest.mark.parametrize("in_flight", [0, 2])
def test_a_message_postgresql_refuses_in_copy_is_dead_lettered_not_fatal(
    in_flight: int, postgres_url: str
) -> None:
    """A NUL in a header (valid on the wire, refused by PostgreSQL's text) fails the binary
    ``COPY``, below SQLAlchemy: still a rejected row, dead-lettered and counted, the rest stored."""
    bus = InProcessBus()
    published = _publish(bus)
    kept = [e for e in _analysed()[0] if isinstance(e, SipMessageEvent)]
    bad = kept[0].model_copy(update={"user_agent": "evil\x00agent", "ts": kept[0].ts + 0.5, "frame": 10**6})
    bus.publish(TOPICS.events, bad.call_id, bad.model_dump_json().encode())
    settings = StoreSettings(
        url=postgres_url, batch_size=50, exit_when_idle_s=0.001, writes_in_flight=in_flight, port=0
    )
    _, source, metrics = _run_to_idle(bus, settings)
    assert source.acked == sum(published.values()) + 1
    assert metrics.dead_lettered._value.get() == 1
    assert metrics.db_errors.labels(kind="rejected")._value.get() == 1
    assert len(dump(postgres_url)["sip_messages"]) == len(kept)


def test_consumed_counts_lag_and_pending_reach_the_metrics_with_each_batch(tmp_path: Path) -> None:
    """Per record they are only noted; each batch written (or handed over) publishes them: the
    counts of every record read (undecodable ones too), the lag from the newest record's
    timestamp by the service's wall clock, and nothing pending once it is written."""
    kept = [e for e in _analysed()[0] if isinstance(e, SipMessageEvent)]
    settings = StoreSettings(url=f"sqlite:///{tmp_path / 'm.db'}", writes_in_flight=0, port=0)
    engine = build_engine(settings)
    metrics = StoreMetrics(CollectorRegistry())
    service = StoreService(engine, settings, metrics, wall=lambda: 1_000_100.0)
    values = [e.model_dump_json().encode() for e in kept[:20]] + [b"{not json"]
    try:
        for offset, value in enumerate(values):
            service.handle(
                Message(TOPICS.events, 0, offset, None, value, timestamp_ms=1_000_000_000 + offset)
            )
        service.publish_metrics()
        assert metrics.pending._value.get() == len(values)
        assert metrics.messages_consumed.labels(topic=TOPICS.events)._value.get() == len(values)
        assert service.flush(None)
    finally:
        engine.dispose()
    # counted once, not again by the flush
    assert metrics.messages_consumed.labels(topic=TOPICS.events)._value.get() == len(values)
    assert metrics.undecodable._value.get() == 1
    # newest timestamp 1,000,000,020 ms = 1,000,000.02 s; the wall clock says 1,000,100 s
    assert metrics.consumer_lag_seconds.labels(topic=TOPICS.events)._value.get() == pytest.approx(99.98)
    assert metrics.pending._value.get() == 0 and service.pending_messages == 0
    assert len(dump(settings.url.get_secret_value())["sip_messages"]) == 20
