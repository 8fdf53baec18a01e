"""``PipelinedWriter``: rows built on the caller's thread while a writer thread writes the batch
before, on real databases. The same rows as writing in line; a replay adds nothing; an error on
the writer thread reaches the caller and nothing after it is written; a batch written while
PostgreSQL restarts is written again, nothing lost or doubled; at most ``depth`` batches wait."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnyEvent, RtpStreamReport, SipMessageEvent
from callqual.store.pipelined import PipelinedWriter
from callqual.store.writer import Batch, StoreWriter
from tests.postgres_server import PostgresServer
from tests.store.captures import capture, store
from tests.store.test_store_postgres import dump

CAPTURE = "heplify/rtp_rtcp_sip_ipv4_udp.pcap"
#: SIP messages (and interval reports) per batch: the capture becomes several batches
PER_BATCH = 4


def _batches() -> list[Batch]:
    """The capture's SIP messages and interval reports in small batches, then its report's rows."""
    kept: list[AnyEvent] = []
    pipeline = EmbeddedPipeline(on_event=kept.append)
    with open_capture(capture(CAPTURE)) as cap:
        pipeline.run(cap)
        pipeline.finish()
        report = pipeline.report(CAPTURE)
    messages = [e for e in kept if isinstance(e, SipMessageEvent)]
    intervals = [e for e in kept if isinstance(e, RtpStreamReport) and not e.final]
    out = [
        Batch(messages=messages[i : i + PER_BATCH], intervals=intervals[i : i + PER_BATCH])
        for i in range(0, max(len(messages), len(intervals)), PER_BATCH)
    ]
    out.append(StoreWriter.report_batch(report))
    assert len(out) >= 4 and intervals and report.calls and report.streams
    return out


def _in_line(url: str, batches: list[Batch], bound: int = 500) -> dict[str, list[tuple[object, ...]]]:
    with store(url) as engine:
        writer = StoreWriter(engine, bound)
        for b in batches:
            writer.write_batch(b)
    return dump(url)


def _url(engine_name: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{tmp_path / name}"
    url: str = request.getfixturevalue("postgres_server").create_database()
    return url


@pytest.mark.parametrize("depth", [2, 0])
@pytest.mark.parametrize("bound", [500, 3])
@pytest.mark.parametrize("engine_name", ["postgresql", "sqlite"])
def test_pipelined_batches_store_what_in_line_batches_store_and_a_replay_adds_nothing(
    engine_name: str, bound: int, depth: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    batches = _batches()
    expected = _in_line(_url(engine_name, tmp_path, "line.db", request), batches, bound)
    url = _url(engine_name, tmp_path, "pipe.db", request)
    with store(url) as engine:
        with PipelinedWriter(StoreWriter(engine, bound), depth) as pipe:
            for b in batches:
                pipe.submit(b)
        first = pipe.stats
        assert dump(url) == expected
        assert first.messages_stored == len(expected["sip_messages"])
        assert first.messages_stored + first.messages_dropped == sum(len(b.messages) for b in batches)
        assert (first.messages_dropped > 0) == (bound == 3)
        with PipelinedWriter(StoreWriter(engine, bound), depth) as again:
            for b in batches:
                again.submit(b)
        assert again.stats.messages_stored == 0
    # As a replay in line does (over the bound, replayed messages count as dropped again).
    assert dump(url) == _in_line(_url(engine_name, tmp_path, "twice.db", request), batches + batches, bound)


def test_an_error_on_the_writer_thread_reaches_the_caller_and_nothing_after_it_is_written(
    postgres_server: PostgresServer,
) -> None:
    batches = _batches()
    first, second, *rest = batches
    # PostgreSQL refuses a NUL in text: the row is built, the database rejects the batch.
    poisoned = Batch(
        messages=[
            second.messages[0].model_copy(update={"user_agent": "evil\x00agent"}),
            *second.messages[1:],
        ],
        intervals=second.intervals,
    )
    expected = _in_line(postgres_server.create_database(), [first])
    url = postgres_server.create_database()
    with store(url) as engine:
        pipe = PipelinedWriter(StoreWriter(engine), depth=2)
        try:
            with pytest.raises(DBAPIError, match="0x00"):
                for b in [first, poisoned, *rest]:
                    pipe.submit(b)  # prepared here while the writer thread writes the one before
                pipe.finish()
        finally:
            pipe.close()
    # The first batch committed; the rejected one rolled back whole; none after it attempted.
    assert dump(url) == expected


def test_a_batch_written_while_postgresql_restarts_is_written_again_nothing_lost_or_doubled() -> None:
    batches = _batches()
    server = PostgresServer(durable=True)
    try:
        expected = _in_line(server.create_database(), batches)
        url = server.create_database()
        with store(url) as engine:
            pipe = PipelinedWriter(StoreWriter(engine), depth=2, tries=30, backoff_s=0.05)
            try:
                pipe.submit(batches[0])
                pipe.finish()
                server.stop()
                pipe.submit(batches[1])  # fails on the writer thread: the server is away
                for _ in range(2400):  # a bound, not a timing: the first failed try is awaited
                    if pipe.retries:
                        break
                    time.sleep(0.05)
                assert pipe.retries >= 1
                server.start()
                for b in batches[2:]:
                    pipe.submit(b)
                stats = pipe.finish()
            finally:
                pipe.close()
        assert dump(url) == expected
        assert stats.messages_stored == len(expected["sip_messages"])
    finally:
        server.close()


def test_submit_waits_while_depth_batches_are_in_flight_and_counts_it(postgres_url: str) -> None:
    batches = _batches()
    with store(postgres_url) as engine, engine.connect() as blocker:
        pipe = PipelinedWriter(StoreWriter(engine), depth=1)
        try:
            # The first batch's write waits on this lock, so it stays in flight.
            blocker.execute(text("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE"))
            pipe.submit(batches[-1])
            second = threading.Thread(target=pipe.submit, args=(batches[0],))
            second.start()
            for _ in range(2400):  # a bound, not a timing: the second submit is awaited
                if pipe.full_waits:
                    break
                time.sleep(0.05)
            assert pipe.full_waits >= 1 and pipe.in_flight == 1 and second.is_alive()
            blocker.rollback()
            second.join(120)
            assert not second.is_alive()
            pipe.finish()
        finally:
            pipe.close()
    rows = dump(postgres_url)
    assert len(rows["calls"]) == len(batches[-1].calls)
    assert len(rows["sip_messages"]) == len(batches[0].messages)
