"""``callqual store`` on a real broker: the same rows as ``analyze --store``; a PostgreSQL restart mid-stream
loses nothing and doubles nothing; replayed offsets change nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from callqual.observability.http_server import MetricsServer
from callqual.schemas import AnalysisReport
from callqual.simulator import simulate
from callqual.store.embedded import analyze_into_store
from callqual.store.service import StoreMetrics, StoreService, StoreSettings, build_engine
from callqual.transport import Message
from callqual.transport.kafka import KafkaEventSource
from callqual.transport.settings import KafkaSettings
from callqual.transport.topics import Topics
from tests.pipeline.test_kafka_pipeline import collector, detector, finish
from tests.postgres_server import PostgresServer
from tests.store.test_store_postgres import dump

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

Pipeline = tuple[str, Path, AnalysisReport]


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The demo capture through the collector and detector services once: (topic prefix, capture, report)."""
    path = tmp_path_factory.mktemp("demo") / "demo.pcap"
    simulate("demo", path, seed=3)
    prefix = f"s{uuid.uuid4().hex[:10]}."
    code, log = finish(collector(kafka_bootstrap, prefix, path))
    assert code == 0, log[-3:]
    code, log = finish(detector(kafka_bootstrap, prefix, f"g{prefix}"))
    assert code == 0, log[-3:]
    report = analyze_into_store(path, f"sqlite:///{tmp_path_factory.mktemp('ref') / 'ref.db'}").report
    return prefix, path, report


def _reference(path: Path, tmp_path: Path) -> dict[str, list[tuple[object, ...]]]:
    url = f"sqlite:///{tmp_path / 'analyze.db'}"
    analyze_into_store(path, url)
    return dump(url)


@pytest.mark.parametrize(("engine", "in_flight"), [("sqlite", "2"), ("postgresql", "2"), ("postgresql", "0")])
def test_kafka_path_stores_the_same_rows_as_analyze(
    engine: str,
    pipeline: Pipeline,
    kafka_bootstrap: str,
    tmp_path: Path,
    *,
    in_flight: str,
    request: pytest.FixtureRequest,
) -> None:
    prefix, path, report = pipeline
    url = (
        f"sqlite:///{tmp_path / 'kafka.db'}"
        if engine == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    proc = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "callqual",
                "store",
                "--store",
                url,
                "--bootstrap-servers",
                kafka_bootstrap,
            ),
            *("--topic-prefix", prefix, "--group-id", f"st-{uuid.uuid4().hex[:8]}", "--port", "0"),
            *("--exit-when-idle", "3", "--batch-size", "200", "--writes-in-flight", in_flight),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    log = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 0, log[-5:]
    rows = dump(url)
    assert rows == _reference(path, tmp_path)
    assert len(rows["sip_messages"]) == report.summary.sip_messages > 0
    assert len(rows["calls"]) == report.summary.calls and len(rows["alerts"]) == report.summary.alerts
    assert len(rows["streams"]) == report.summary.streams and rows["stream_intervals"]


class GatedSource:
    """The real Kafka source, held shut after ``open_for`` messages until the test opens the gate."""

    def __init__(self, source: KafkaEventSource, open_for: int) -> None:
        self.source = source
        self.open_for = open_for
        self.passed = 0
        self.gate = threading.Event()

    def poll(self, timeout: float) -> Message | None:
        if self.passed >= self.open_for and not self.gate.wait(timeout):
            return None
        message = self.source.poll(timeout)
        self.passed += message is not None
        return message

    def ack(self, message: Message) -> None:
        self.source.ack(message)

    def commit(self) -> None:
        self.source.commit()

    def close(self) -> None:
        self.source.close()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _committed(bootstrap: str, group: str, topic: str) -> int:
    """Sum of the group's committed offsets on ``topic`` (0 where nothing is committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(0, tp.offset) for tp in committed)
    finally:
        consumer.close()


@pytest.mark.parametrize("in_flight", [0, 3], ids=["in-line", "writer-thread"])
def test_postgres_restart_mid_stream_loses_nothing_and_doubles_nothing(
    pipeline: Pipeline,
    kafka_bootstrap: str,
    postgres_url: str,
    tmp_path: Path,
    *,
    in_flight: int,
    request: pytest.FixtureRequest,
) -> None:
    postgres_server: PostgresServer = request.getfixturevalue("postgres_server")
    caplog: pytest.LogCaptureFixture = request.getfixturevalue("caplog")
    prefix, path, report = pipeline
    secret = "pw-never-shown"
    url = postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")  # trust auth
    group = f"st-{uuid.uuid4().hex[:8]}"
    settings = StoreSettings(
        url=url,
        group_id=group,
        batch_size=50,
        batch_interval_s=0.2,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
        exit_when_idle_s=3.0,
        writes_in_flight=in_flight,
    )
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, session_timeout_ms=6000)
    topics = Topics.with_prefix(prefix)
    engine = build_engine(settings)
    metrics = StoreMetrics(CollectorRegistry())
    service = StoreService(engine, settings, metrics, topics=topics)
    source = GatedSource(KafkaEventSource(kafka, service.input_topics(), group_id=group), open_for=120)
    server = MetricsServer(metrics, port=0, healthy=service.healthy).start()
    base = f"http://127.0.0.1:{server.port}"
    stop = threading.Event()
    result: list[int] = []
    loop = threading.Thread(target=lambda: result.append(service.run(source, stop, poll_s=0.1)))
    loop.start()
    try:
        # First part of the stream written and committed, then the database goes away.
        _wait(lambda: source.passed >= 120 and service.db_up and service.pending_messages == 0, 60, "part 1")
        committed_before = sum(_committed(kafka_bootstrap, group, t) for t in service.input_topics())
        assert 0 < committed_before <= 120
        assert httpx.get(f"{base}/healthz").status_code == 200
        postgres_server.stop()
        try:
            source.gate.set()
            _wait(lambda: service.failures >= 3, 60, "failed writes")
            assert not service.db_up
            assert httpx.get(f"{base}/healthz").status_code == 503
            text = httpx.get(f"{base}/metrics").text
            assert "callqual_store_db_up 0.0" in text and secret not in text
            assert 'callqual_store_db_errors_total{kind="unavailable"}' in text
            # Nothing acknowledged while the database is away; reading stops at the bound.
            committed = sum(_committed(kafka_bootstrap, group, t) for t in service.input_topics())
            assert committed == committed_before
            held = (in_flight + 1) * settings.batch_size
            _wait(lambda: service.pending_messages >= min(held, source.passed - 120), 30, "reading")
            assert service.pending_messages <= held
            if in_flight:
                assert metrics.batches_in_flight._value.get() == in_flight
                assert metrics.writer_full._value.get() > 0
        finally:
            postgres_server.start()
        loop.join(timeout=120)
        assert result == [0]
    finally:
        stop.set()
        source.gate.set()
        loop.join(timeout=30)
        server.close()
        engine.dispose()
    rows = dump(postgres_url)
    assert rows == _reference(path, tmp_path)
    assert len(rows["sip_messages"]) == report.summary.sip_messages
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "store unavailable" in text and secret not in text

    # Replayed offsets (a new group reads everything again): not one row more or changed.
    again = StoreSettings(url=url, group_id=f"re-{group}", exit_when_idle_s=3.0, batch_size=500)
    engine = build_engine(again)
    replay = StoreService(engine, again, StoreMetrics(CollectorRegistry()), topics=topics)
    try:
        code = replay.run(
            KafkaEventSource(kafka, replay.input_topics(), group_id=f"re-{group}"), threading.Event()
        )
    finally:
        engine.dispose()
    assert code == 0
    assert dump(postgres_url) == rows


def test_poison_messages_are_dead_lettered_and_counted(
    pipeline: Pipeline, kafka_bootstrap: str, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    from callqual.transport.kafka import KafkaEventSink, ensure_service_topics
    from tests.pipeline.test_kafka_pipeline import read_topic

    _, _, report = pipeline
    prefix = f"x{uuid.uuid4().hex[:10]}."
    topics = Topics.with_prefix(prefix)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=1)
    ensure_service_topics(
        kafka, [topics.events, topics.calls, topics.streams, topics.alerts, topics.deadletter]
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topics.calls, value=b"{not json")
    producer.produce(topics.events, value=b"[1, 2]")
    producer.produce(topics.alerts, value=b'{"kind": "alert"}')
    # Valid on the wire, but no database date can hold it: rejected by the writer, not fatal.
    far = report.calls[1].model_copy(update={"start_ts": 1e20})
    producer.produce(topics.calls, value=far.model_dump_json().encode())
    producer.produce(topics.calls, value=report.calls[0].model_dump_json().encode())
    assert producer.flush(10) == 0
    url = f"sqlite:///{tmp_path / 'p.db'}"
    settings = StoreSettings(url=url, group_id=f"p-{prefix}", exit_when_idle_s=3.0)
    engine = build_engine(settings)
    metrics = StoreMetrics(CollectorRegistry())
    sink = KafkaEventSink(kafka)
    service = StoreService(engine, settings, metrics, topics=topics, dead_letter=sink)
    try:
        code = service.run(
            KafkaEventSource(kafka, service.input_topics(), group_id=settings.group_id), threading.Event()
        )
    finally:
        sink.close()
        engine.dispose()
    assert code == 0
    assert metrics.undecodable._value.get() == 3
    assert metrics.dead_lettered._value.get() == 4
    letters = [json.loads(v) for v, _ in read_topic(kafka_bootstrap, topics.deadletter)]
    expected = [topics.calls, topics.calls, topics.events, topics.alerts]
    assert sorted(d["topic"] for d in letters) == sorted(expected)
    assert sorted(d["reason"].split(":")[0] for d in letters) == ["rejected", *["undecodable"] * 3]
    rows = dump(url)
    assert [r[0] for r in rows["calls"]] == [report.calls[0].call_id]


def test_the_service_process_reports_an_unreachable_database_and_stops_on_sigterm(
    pipeline: Pipeline, kafka_bootstrap: str
) -> None:
    """``callqual store`` as a supervisor runs it, with its database never reachable."""
    import os
    import signal

    from tests.alerter.receiver import free_port

    prefix, _, _ = pipeline
    port = free_port()
    secret = "pw-3e9d"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "callqual", "store", "--bootstrap-servers", kafka_bootstrap),
            *("--topic-prefix", prefix, "--group-id", f"down-{uuid.uuid4().hex[:8]}", "--port", str(port)),
        ],
        env={**os.environ, "CALLQUAL_STORE_URL": f"postgresql://callqual:{secret}@127.0.0.1:9/callqual"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def unavailable() -> bool:
            try:
                text = httpx.get(f"{base}/metrics", timeout=2).text
            except httpx.HTTPError:
                return False
            return 'callqual_store_db_errors_total{kind="unavailable"}' in text and "db_up 0.0" in text

        _wait(unavailable, 60, "the service to report the database down")
        assert httpx.get(f"{base}/healthz", timeout=2).status_code == 503
        assert secret not in httpx.get(f"{base}/metrics", timeout=2).text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The batch was never written: exit 1, offsets not committed (a restart replays it).
    assert proc.returncode == 1
    log = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any("store unavailable" in entry["msg"] for entry in log)
    assert secret not in err
