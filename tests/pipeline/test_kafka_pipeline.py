"""The collector and detector services over a real broker agree with ``callqual analyze``.

The services run as subprocesses (``python -m callqual collector|detector``),
as a supervisor would run them, so signals, exit codes and logs are exercised
too. Each test uses its own topic prefix and consumer group on the shared
session broker, except the outage test, which stops and restarts a broker of
its own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from callqual.pipeline.embedded import analyze_file
from callqual.schemas import Alert, AnalysisReport, CallRecord
from callqual.simulator import simulate
from callqual.transport.topics import Topics
from tests.kafka_broker import KAFKA_LOCAL

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AnalysisReport]:
    path = tmp_path_factory.mktemp("demo") / "demo.pcap"
    simulate("demo", path, seed=3)
    return path, analyze_file(path)


def _prefix() -> str:
    return f"p{uuid.uuid4().hex[:10]}."


def _callqual(*args: str) -> list[str]:
    return [sys.executable, "-m", "callqual", *args]


def collector(bootstrap: str, prefix: str, pcap: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _callqual(
            "collector",
            "--pcap",
            str(pcap),
            "--bootstrap-servers",
            bootstrap,
            "--topic-prefix",
            prefix,
            "--partitions",
            "3",
            *extra,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def detector(bootstrap: str, prefix: str, group: str, idle: float = 4.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _callqual(
            "detector",
            "--bootstrap-servers",
            bootstrap,
            "--topic-prefix",
            prefix,
            "--group-id",
            group,
            "--partitions",
            "3",
            "--exit-when-idle",
            str(idle),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A restarted member waits for the group to evict the crashed one: keep that short.
        env={**os.environ, "CALLQUAL_KAFKA_SESSION_TIMEOUT_MS": "6000"},
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, list[dict[str, object]]]:
    """Wait for a service; its exit code and its JSON log lines (every line must be JSON)."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, [json.loads(line) for line in err.splitlines() if line.strip()]


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    """Everything on ``topic`` up to its current end: (value, headers) in partition order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        out: list[tuple[bytes, dict[str, bytes]]] = []
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            seen = low
            deadline = time.monotonic() + 30
            while seen < high and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None or msg.error() is not None:
                    continue
                seen = msg.offset() + 1
                out.append((msg.value() or b"", dict(msg.headers() or [])))
            assert seen >= high, f"{topic}[{p}] read up to {seen} of {high}"
        return out
    finally:
        consumer.close()


def outputs(bootstrap: str, prefix: str) -> tuple[list[CallRecord], list[Alert]]:
    topics = Topics.with_prefix(prefix)
    calls = [CallRecord.model_validate_json(v) for v, _ in read_topic(bootstrap, topics.calls)]
    # An alert raised before its call ended is re-sent, same id, when the call finishes (keyed by
    # alert id, so in order): a consumer keeps the latest version of each id.
    latest = {
        a.alert_id: a for a in (Alert.model_validate_json(v) for v, _ in read_topic(bootstrap, topics.alerts))
    }
    return calls, list(latest.values())


def assert_same_as_embedded(report: AnalysisReport, calls: list[CallRecord], alerts: list[Alert]) -> None:
    """Deduplicated by Call-ID and alert id (what a downstream consumer does), equal to analyze."""
    expected_calls = {c.call_id: c for c in report.calls}
    for record in calls:
        assert record == expected_calls[record.call_id], record.call_id
    assert {c.call_id for c in calls} == set(expected_calls)
    expected_alerts = {a.alert_id: a for a in report.alerts}
    for alert in alerts:
        assert alert == expected_alerts.get(alert.alert_id), alert
    assert {a.alert_id for a in alerts} == set(expected_alerts)


def test_collector_detector_over_kafka_equals_analyze(
    kafka_bootstrap: str, demo: tuple[Path, AnalysisReport]
) -> None:
    pcap, report = demo
    prefix = _prefix()
    code, log = finish(collector(kafka_bootstrap, prefix, pcap))
    assert code == 0, log
    final = log[-1]
    assert final["msg"] == "collector finished" and final["lost"] == 0
    assert final["delivered"] == final["events"]

    code, dlog = finish(detector(kafka_bootstrap, prefix, f"g{prefix}"))
    assert code == 0, dlog
    calls, alerts = outputs(kafka_bootstrap, prefix)
    # One run, no crash: exactly once here, and exactly the embedded result.
    assert len(calls) == len(report.calls) and len(alerts) == len(report.alerts)
    assert_same_as_embedded(report, calls, alerts)
    streams = read_topic(kafka_bootstrap, Topics.with_prefix(prefix).streams)
    assert len(streams) == len(report.streams)


def test_detector_killed_mid_stream_and_restarted_loses_no_call(
    kafka_bootstrap: str, demo: tuple[Path, AnalysisReport]
) -> None:
    pcap, report = demo
    prefix, group = _prefix(), f"g{uuid.uuid4().hex[:8]}"
    calls_topic = Topics.with_prefix(prefix).calls
    # Paced: the 60 s capture takes ~15 s, so the detector dies with calls in flight.
    col = collector(kafka_bootstrap, prefix, pcap, "--pace", "4")
    det = detector(kafka_bootstrap, prefix, group, idle=60)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                if len(read_topic(kafka_bootstrap, calls_topic)) >= 3:
                    break
            except (KeyError, KafkaException):  # topic not created, or its leader not elected, yet
                continue
        assert col.poll() is None, "the collector finished before the detector could be killed"
        det.send_signal(signal.SIGKILL)
        det.communicate(timeout=10)
        before = len(read_topic(kafka_bootstrap, calls_topic))
        assert 3 <= before < len(report.calls)
        code, log = finish(col)
        assert code == 0 and log[-1]["lost"] == 0, log[-3:]
        code, dlog = finish(detector(kafka_bootstrap, prefix, group, idle=4))
        assert code == 0, dlog[-3:]
    finally:
        for proc in (col, det):
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    calls, alerts = outputs(kafka_bootstrap, prefix)
    assert_same_as_embedded(report, calls, alerts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A broker of this test's own (it is stopped mid-test), on free ports and its own data dir."""
    env = {
        **os.environ,
        "CALLQUAL_KAFKA_PORT": str(_free_port()),
        "CALLQUAL_KAFKA_CONTROLLER_PORT": str(_free_port()),
        "CALLQUAL_KAFKA_RUN_DIR": str(tmp_path / "kafka"),
        "CALLQUAL_KAFKA_START_TIMEOUT": "120",
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    started = subprocess.run(
        ["bash", str(KAFKA_LOCAL), "start", "--fresh"], env=env, capture_output=True, text=True, check=False
    )
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield f"127.0.0.1:{env['CALLQUAL_KAFKA_PORT']}", env
    finally:
        subprocess.run(["bash", str(KAFKA_LOCAL), "stop"], env=env, capture_output=True, check=False)


def test_collector_survives_a_broker_outage_and_counts_exactly_what_it_drops(
    own_broker: tuple[str, dict[str, str]], demo: tuple[Path, AnalysisReport]
) -> None:
    bootstrap, env = own_broker
    pcap, _ = demo
    roomy, tight = _prefix(), _prefix()
    # Both paced over ~30 s: one with the default (large) buffer, one that must overflow.
    procs = [
        collector(bootstrap, roomy, pcap, "--pace", "2"),
        collector(bootstrap, tight, pcap, "--pace", "2", "--buffer-max-messages", "40"),
    ]
    try:
        # Both connected and publishing before the broker goes away.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                if all(read_topic(bootstrap, Topics.with_prefix(p).events) for p in (roomy, tight)):
                    break
            except (KeyError, KafkaException):
                continue
        assert all(p.poll() is None for p in procs)
        stop = subprocess.run(
            ["bash", str(KAFKA_LOCAL), "stop"], env=env, capture_output=True, text=True, check=False
        )
        assert stop.returncode == 0, stop.stderr
        time.sleep(20)
        assert all(p.poll() is None for p in procs), "a collector died with the broker"
        start = subprocess.run(
            ["bash", str(KAFKA_LOCAL), "start"], env=env, capture_output=True, text=True, check=False
        )
        assert start.returncode == 0, start.stderr[-3000:]
        results = [finish(p, timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    for prefix, (code, log) in zip((roomy, tight), results, strict=True):
        final = log[-1]
        assert final["msg"] == "collector finished", final
        assert int(str(final["broker_errors"])) > 0, "no outage seen"
        on_topic = [
            h
            for _, h in read_topic(bootstrap, Topics.with_prefix(prefix).events)
            if "callqual-marker" not in h
        ]
        seqs = {int(h["seq"]) for h in on_topic}
        assert len(seqs) == len(on_topic), "duplicates on the topic"
        missing = int(str(final["events"])) - len(on_topic)
        assert missing == final["lost"], (prefix, final)
        assert code == (0 if missing == 0 else 5)
        if prefix == roomy:
            assert missing == 0
        else:
            assert int(str(final["dropped"])) > 0


def test_two_detectors_share_the_partitions_and_publish_every_call(
    kafka_bootstrap: str, demo: tuple[Path, AnalysisReport]
) -> None:
    """Partition-affine state: each call is finished by the one member owning its partition.

    Call records are complete and signalling/media fields equal the embedded run's. The
    verdicts may differ, and that is documented: source-wide rules (a scanner's probes
    carry distinct Call-IDs) only see the partitions of their member.
    """
    pcap, report = demo
    prefix, group = _prefix(), f"g{uuid.uuid4().hex[:8]}"
    dets = [detector(kafka_bootstrap, prefix, group, idle=8) for _ in range(2)]
    try:
        time.sleep(6)
        # Paced over ~15 s, so a member that joins late takes its partitions mid-stream
        # (a rebalance: the other drops its state, the new owner replays from the commits).
        code, log = finish(collector(kafka_bootstrap, prefix, pcap, "--pace", "4"))
        assert code == 0, log[-3:]
        results = [finish(d) for d in dets]
    finally:
        for d in dets:
            if d.poll() is None:
                d.kill()
            d.communicate()
    assert [code for code, _ in results] == [0, 0], [log[-2:] for _, log in results]
    applied = [int(str(log[-1]["applied"])) for _, log in results]
    assert all(n > 0 for n in applied), applied  # both did share the work
    calls, _ = outputs(kafka_bootstrap, prefix)
    expected = {c.call_id: c for c in report.calls}
    assert {c.call_id for c in calls} == set(expected)
    verdict = {"category", "problems"}
    for record in calls:
        assert record.model_dump(exclude=verdict) == expected[record.call_id].model_dump(exclude=verdict)
