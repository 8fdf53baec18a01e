"""``callqual store --members N`` on a real broker and a real PostgreSQL: the members share the
partitions and store what ``analyze --store`` stores; a member SIGKILLed mid-stream loses nothing
and doubles nothing (its partitions move; it is started again)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from callqual.store.service import input_topics
from callqual.transport.kafka import ensure_service_topics
from callqual.transport.settings import KafkaSettings
from callqual.transport.topics import Topics
from tests.alerter.receiver import free_port
from tests.store import test_store_service
from tests.store.test_store_postgres import dump
from tests.store.test_store_service import Pipeline, _reference, _wait

#: The demo capture through the collector and detector services once (the service tests' fixture)
pipeline = test_store_service.pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _copy_input(bootstrap: str, source: str, target: str) -> None:
    """The store's input topics of prefix ``source`` onto prefix ``target``, partition by partition
    (same keys, same partitions, same order), so the members see it arrive after they joined."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"copy-{uuid.uuid4().hex}"})
    producer = Producer({"bootstrap.servers": bootstrap})
    try:
        pairs = zip(
            input_topics(Topics.with_prefix(source)), input_topics(Topics.with_prefix(target)), strict=True
        )
        for src, dst in pairs:
            for p in sorted(consumer.list_topics(src, timeout=10).topics[src].partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(src, p), timeout=10)
                consumer.assign([TopicPartition(src, p, low)])
                seen = low
                while seen < high:
                    msg = consumer.poll(10.0)
                    assert msg is not None and msg.error() is None, f"{src}[{p}] stuck at {seen} of {high}"
                    producer.produce(dst, msg.value(), msg.key(), partition=p)
                    seen = msg.offset() + 1
        assert producer.flush(30) == 0
    finally:
        consumer.close()


def _wait_for_members(bootstrap: str, group: str, members: int) -> None:
    """Until ``group`` is stable with ``members`` members, each holding partitions (at most 120 s)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def stable() -> bool:
        found = admin.describe_consumer_groups([group])[group].result(timeout=10)
        held = [m for m in found.members if m.assignment.topic_partitions]
        return str(found.state).endswith("STABLE") and len(held) == members

    _wait(stable, 120, f"{members} members in {group}")


class Members:
    """``callqual store --members N`` as a subprocess, its JSON log lines collected as they come."""

    def __init__(self, bootstrap: str, source: str, url: str, members: int, *extra: str) -> None:
        """Members on a fresh copy of prefix ``source``'s input, copied once they all hold partitions."""
        self.lines: list[dict[str, Any]] = []
        prefix = f"c{uuid.uuid4().hex[:10]}."
        topics = Topics.with_prefix(prefix)
        ensure_service_topics(
            # As many partitions as the pipeline's topics (3): a partition copied to a partition
            KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=3),
            input_topics(topics),
        )
        self.group = f"m-{uuid.uuid4().hex[:8]}"
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "callqual", "store", "--store", url, "--members", str(members)),
                *("--bootstrap-servers", bootstrap, "--topic-prefix", prefix),
                *("--group-id", self.group, *extra),
            ],
            # A killed member's partitions move once its session times out: short here.
            env={**os.environ, "CALLQUAL_KAFKA_SESSION_TIMEOUT_MS": "6000"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        _wait_for_members(bootstrap, self.group, members)
        _copy_input(bootstrap, source, prefix)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.strip():
                self.lines.append(json.loads(line))

    def logged(self, msg: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if line.get("msg") == msg]

    def finish(self, timeout: float = 240) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code


def test_two_members_share_the_partitions_and_store_what_analyze_stores(
    pipeline: Pipeline, kafka_bootstrap: str, postgres_url: str, tmp_path: Path
) -> None:
    prefix, path, report = pipeline
    run = Members(
        kafka_bootstrap,
        prefix,
        postgres_url,
        2,
        "--port",
        "0",
        "--exit-when-idle",
        "25",
        "--batch-size",
        "20",
    )
    assert run.finish() == 0, run.lines[-5:]
    stopped = {line["member"]: line for line in run.logged("stopped") if line.get("member") is not None}
    assert sorted(stopped) == [0, 1]
    # Both members wrote: the topics' six partitions were shared between them.
    assert all(line["batches"] > 0 and line["exit_code"] == 0 for line in stopped.values()), stopped
    assert {line["service"] for line in run.logged("store started")} == {"store.0", "store.1"}
    rows = dump(postgres_url)
    assert rows == _reference(path, tmp_path)
    assert len(rows["sip_messages"]) == report.summary.sip_messages > 0


def test_a_member_killed_mid_stream_loses_nothing_and_doubles_nothing(
    pipeline: Pipeline, kafka_bootstrap: str, postgres_url: str, tmp_path: Path
) -> None:
    prefix, path, report = pipeline
    port = free_port()
    run = Members(
        kafka_bootstrap,
        prefix,
        postgres_url,
        2,
        *("--port", str(port), "--exit-when-idle", "25", "--batch-size", "5", "--writes-in-flight", "0"),
    )
    try:

        def member_wrote(member: int) -> bool:
            try:
                text = httpx.get(f"http://127.0.0.1:{port + member}/metrics", timeout=2).text
            except httpx.HTTPError:
                return False
            return "callqual_store_batches_total 0.0" not in text and "callqual_store_batches_total" in text

        _wait(lambda: member_wrote(1), 120, "member 1's first batch")
        victim = next(line["pid"] for line in run.logged("member started") if line["member"] == 1)
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: bool(run.logged("member killed, starting it again")), 30, "the restart")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    finally:
        code = run.finish()
    assert code == 0, run.lines[-5:]
    killed = run.logged("member killed, starting it again")
    assert [(k["member"], k["signal"]) for k in killed] == [(1, "SIGKILL")]
    assert len(run.logged("member started")) == 3
    rows = dump(postgres_url)
    assert rows == _reference(path, tmp_path)
    assert len(rows["sip_messages"]) == report.summary.sip_messages


def test_more_than_one_member_needs_postgresql(kafka_bootstrap: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "callqual", "store", "--store", f"sqlite:///{tmp_path / 's.db'}"),
            *("--bootstrap-servers", kafka_bootstrap),
        ],
        env={**os.environ, "CALLQUAL_STORE_MEMBERS": "2"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "needs a postgresql:// store" in proc.stderr
    too_many = subprocess.run(
        [*(sys.executable, "-m", "callqual", "store", "--store", "postgresql://db/x", "--members", "65")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert too_many.returncode == 2
    assert "members: Input should be less than or equal to 64" in too_many.stderr
