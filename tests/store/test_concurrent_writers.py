"""Several writers on one PostgreSQL at once (``callqual store --members N``): the rows they store
are the rows one writer stores, whichever writer gets a call's record, streams, alerts or messages."""

import threading
import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select, text

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnyEvent, RtpStreamReport, SipMessageEvent
from callqual.simulator import simulate
from callqual.store.partitions import PARTITIONED, create_partitions, partition_days
from callqual.store.retention import RetentionResult, apply_retention
from callqual.store.schema import sip_message_counts
from callqual.store.service import StoreMetrics, StoreService, StoreSettings
from callqual.store.writer import Batch, StoreWriter, WriteStats
from callqual.transport import TOPICS, Message
from tests.postgres_server import PostgresServer
from tests.store.captures import store
from tests.store.test_store_postgres import dump

#: Records per batch: small, so each writer writes many transactions that overlap its rivals'
_BATCH = 12


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """The demo capture's calls, streams, alerts, SIP messages and interval reports, in input order."""
    path = tmp_path_factory.mktemp("demo") / "demo.pcap"
    simulate("demo", path, seed=3)
    events: list[AnyEvent] = []
    pipeline = EmbeddedPipeline(on_event=events.append)
    with open_capture(path) as cap:
        pipeline.run(cap)
        pipeline.finish()
        report = pipeline.report(str(path))
    return Batch(
        calls=list(report.calls),
        streams=list(report.streams),
        alerts=list(report.alerts),
        messages=[e for e in events if isinstance(e, SipMessageEvent)],
        intervals=[e for e in events if isinstance(e, RtpStreamReport) and not e.final],
    )


def _member(key: str | None, members: int, shift: int) -> int:
    """The member a record goes to: by key as Kafka would, shifted per kind so that a call's
    record, streams, alerts and messages land on different members."""
    return (zlib.crc32((key or "").encode()) + shift) % members


def _shares(data: Batch, members: int) -> list[list[Batch]]:
    """Each member's batches: its records of every kind, in input order, cut into small batches."""
    shares: list[Batch] = [Batch() for _ in range(members)]
    for m in data.messages:
        shares[_member(m.call_id, members, 0)].messages.append(m)
    for r in data.intervals:
        shares[_member(r.call_id, members, 0)].intervals.append(r)
    for c in data.calls:
        shares[_member(c.call_id, members, 1)].calls.append(c)
    for s in data.streams:
        shares[_member(s.call_id, members, 2)].streams.append(s)
    for a in data.alerts:
        shares[_member(a.call_id, members, 3)].alerts.append(a)
    out: list[list[Batch]] = []
    for share in shares:
        batches = []
        kinds = ("messages", "intervals", "calls", "streams", "alerts")
        longest = max(len(getattr(share, k)) for k in kinds)
        for i in range(0, longest, _BATCH):
            batches.append(Batch(**{k: getattr(share, k)[i : i + _BATCH] for k in kinds}))
        out.append(batches)
    return out


def _concurrently(jobs: list[Callable[[threading.Barrier], None]]) -> None:
    """Run ``jobs`` on threads started together; re-raise the first failure."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def guarded(job: Callable[[threading.Barrier], None]) -> None:
        try:
            job(barrier)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=guarded, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]


def _write_as_members(url: str, data: Batch, members: int, bound: int) -> list[StoreWriter]:
    """Each member on its own engine (connection), its batches in lock step with the others'."""
    shares = _shares(data, members)
    rounds = max(len(s) for s in shares)
    engines: list[Engine] = []
    writers: list[StoreWriter] = []
    with store(url) as first:
        engines.append(first)
        for _ in range(members - 1):
            engines.append(store(url).__enter__())
        writers = [StoreWriter(e, bound) for e in engines]

        def member(index: int) -> Callable[[threading.Barrier], None]:
            def job(barrier: threading.Barrier) -> None:
                for k in range(rounds):
                    barrier.wait()
                    if k < len(shares[index]):
                        writers[index].write_batch(shares[index][k])

            return job

        try:
            _concurrently([member(i) for i in range(members)])
        finally:
            for e in engines[1:]:
                e.dispose()
    return writers


@pytest.mark.parametrize("bound", [500, 3])
def test_two_and_three_members_store_what_one_stores(
    demo: Batch, postgres_server: PostgresServer, bound: int
) -> None:
    assert demo.calls and demo.streams and demo.alerts and demo.messages and demo.intervals
    one = postgres_server.create_database()
    _write_as_members(one, demo, 1, bound)
    expected = dump(one)
    assert len(expected["calls"]) == len(demo.calls)
    assert any(row[-1] is not None for row in expected["calls"])  # derived columns filled in
    for members in (2, 3):
        url = postgres_server.create_database()
        _write_as_members(url, demo, members, bound)
        assert dump(url) == expected, f"{members} members"
    if bound == 500:
        # Everything again, as a replay after a rebalance: not one row more or changed. (Past the
        # bound, a replayed message not kept is counted as dropped again: a known limitation.)
        _write_as_members(url, demo, 2, bound)
        assert dump(url) == expected


def test_racing_partition_creation_makes_each_partition_once(postgres_url: str) -> None:
    days = [date(2031, 1, d) for d in (1, 2, 3)]
    with store(postgres_url) as engine:
        engines = [engine, *(store(postgres_url).__enter__() for _ in range(5))]
        try:

            def creator(e: Engine) -> Callable[[threading.Barrier], None]:
                def job(barrier: threading.Barrier) -> None:
                    barrier.wait()
                    create_partitions(e, days)

                return job

            _concurrently([creator(e) for e in engines])
        finally:
            for e in engines[1:]:
                e.dispose()
        with engine.connect() as conn:
            for table in PARTITIONED:
                assert partition_days(conn, table) == days


def _while_a_rival_holds(engine: Engine, batch: Batch, write: Callable[[], object]) -> None:
    """A rival writes ``batch`` and keeps it uncommitted until ``write`` (on a thread) waits on its
    rows; then the rival commits and ``write`` finishes."""
    holder = StoreWriter(engine)
    holder.ensure_partitions(batch)
    with engine.connect() as conn:
        tx = conn.begin()
        holder.write_in(conn, batch)  # written, not committed
        thread = threading.Thread(target=write)
        thread.start()
        _wait_for_lock_wait_or(thread, engine)
        assert thread.is_alive(), "the writer did not wait on the rival's rows"
        tx.commit()
    thread.join(timeout=60)


def test_a_rival_committing_the_same_messages_first_makes_a_retry_not_a_double(
    demo: Batch, postgres_url: str
) -> None:
    """A moved partition replayed while its old owner still writes: the same messages twice at once.
    The second writer waits on the first's rows, fails with a duplicate key, and writes again."""
    batch = Batch(messages=demo.messages[:40])
    with store(postgres_url) as engine, store(postgres_url) as writer_engine:
        writer = StoreWriter(writer_engine)
        result: list[WriteStats] = []
        _while_a_rival_holds(engine, batch, lambda: result.append(writer.write_batch(batch)))
        assert writer.conflicts == 1 and len(result) == 1
        assert result[0].messages_stored == 0  # all stored already: nothing twice
        with engine.connect() as conn:
            counts = conn.execute(select(sip_message_counts.c.stored)).scalars().all()
    assert sum(counts) == 40
    assert len(dump(postgres_url)["sip_messages"]) == 40


def test_a_rival_committing_the_same_records_first_makes_a_retry_not_a_double(
    demo: Batch, postgres_url: str
) -> None:
    """New stream rows are copied, not upserted: the same streams (with their calls and alerts)
    written by a rival at once fail with a duplicate key and are written again as updates."""
    batch = Batch(calls=demo.calls[:5], streams=demo.streams[:5], alerts=demo.alerts[:5])
    assert batch.streams and batch.alerts
    with store(postgres_url) as engine, store(postgres_url) as writer_engine:
        writer = StoreWriter(writer_engine)
        _while_a_rival_holds(engine, batch, lambda: writer.write_batch(batch))
        assert writer.conflicts == 1
        rows = dump(postgres_url)
        with engine.connect() as conn:
            conn.execute(text("TRUNCATE calls, streams, alerts"))
            conn.commit()
        StoreWriter(engine).write_batch(batch)
    # The same rows as one writer writing the batch once
    assert rows == dump(postgres_url) and len(rows["streams"]) == len(batch.streams)


def test_two_writers_adding_the_first_messages_of_one_call_at_once_sum_its_counts(
    demo: Batch, postgres_url: str
) -> None:
    """A call's count row is copied when the writer read none: a rival adding the call's first
    messages meanwhile makes that copy fail (unique violation), and the retry adds to its count."""
    call_id = demo.messages[0].call_id
    own = [m for m in demo.messages if m.call_id == call_id]
    assert len(own) >= 4
    first, second = Batch(messages=own[:2]), Batch(messages=own[2:])
    with store(postgres_url) as engine, store(postgres_url) as writer_engine:
        writer = StoreWriter(writer_engine)
        writer.ensure_partitions(second)
        result: list[WriteStats] = []
        _while_a_rival_holds(engine, first, lambda: result.append(writer.write_batch(second)))
        assert writer.conflicts == 1 and result[0].messages_stored == len(own) - 2
        with engine.connect() as conn:
            stored = conn.execute(select(sip_message_counts.c.stored)).scalars().all()
    assert stored == [len(own)]
    assert len(dump(postgres_url)["sip_messages"]) == len(own)


def test_the_service_counts_a_conflict_it_wrote_again(demo: Batch, postgres_url: str) -> None:
    messages = demo.messages[:40]
    settings = StoreSettings(url=postgres_url, writes_in_flight=0, port=0)
    metrics = StoreMetrics(CollectorRegistry())
    with store(postgres_url) as engine, store(postgres_url) as service_engine:
        service = StoreService(service_engine, settings, metrics)
        for offset, m in enumerate(messages):
            service.handle(Message(TOPICS.events, 0, offset, m.call_id, m.model_dump_json().encode()))
        done: list[bool] = []
        _while_a_rival_holds(engine, Batch(messages=messages), lambda: done.append(service.flush(None)))
    assert done == [True]
    assert metrics.db_errors.labels(kind="conflict")._value.get() == 1
    assert len(dump(postgres_url)["sip_messages"]) == 40


def _wait_for_lock_wait_or(done: threading.Thread, engine: Engine) -> None:
    """Until another session waits on a lock, or ``done`` ended without waiting (at most 60 s)."""
    with engine.connect() as probe:
        for _ in range(600):
            waiting = probe.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).scalar_one()
            if waiting or not done.is_alive():
                return
            threading.Event().wait(0.1)


def test_a_call_row_written_while_a_rival_writes_its_streams_gets_their_values(
    demo: Batch, postgres_server: PostgresServer
) -> None:
    """Member A writes a call's streams (not committed yet), member B its call record: whichever
    commits first, the call row ends with the streams' derived values, as with one writer."""
    call = next(c for c in demo.calls if any(s.call_id == c.call_id and s.mos for s in demo.streams))
    own = [s for s in demo.streams if s.call_id == call.call_id]
    one = postgres_server.create_database()
    with store(one) as engine:
        StoreWriter(engine).write_batch(Batch(calls=[call], streams=own))
    expected = dump(one)["calls"]

    url = postgres_server.create_database()
    with store(url) as engine, store(url) as rival_engine:
        streams_writer, call_writer = StoreWriter(engine), StoreWriter(rival_engine)
        with engine.connect() as conn:
            tx = conn.begin()
            streams_writer.write_in(conn, Batch(streams=own))  # and its refresh: no call row yet
            thread = threading.Thread(target=call_writer.write_batch, args=(Batch(calls=[call]),))
            thread.start()
            _wait_for_lock_wait_or(thread, engine)
            tx.commit()
        thread.join(timeout=60)
    assert dump(url)["calls"] == expected


def test_members_running_retention_at_once_drop_each_partition_once(demo: Batch, postgres_url: str) -> None:
    with store(postgres_url) as engine:
        StoreWriter(engine).write_batch(demo)
        with engine.connect() as conn:
            days = partition_days(conn, "sip_messages")
        assert days
        engines = [engine, *(store(postgres_url).__enter__() for _ in range(3))]
        results: list[RetentionResult] = []
        later = datetime.combine(days[-1], datetime.min.time(), UTC) + timedelta(days=3)

        def member(e: Engine) -> Callable[[threading.Barrier], None]:
            def job(barrier: threading.Barrier) -> None:
                barrier.wait()
                results.append(apply_retention(e, later, days=1))

            return job

        try:
            with engine.connect() as blocker:
                # Readers of both tables hold every retention run back until all four have started.
                blocker.execute(text("LOCK TABLE sip_messages, stream_intervals IN ACCESS SHARE MODE"))
                runs = threading.Thread(target=_concurrently, args=([member(e) for e in engines],))
                runs.start()
                with engine.connect() as probe:
                    # Give every run the time to be held back (one waits for the tables, the
                    # others for the partition lock); how many show as waiting in
                    # pg_stat_activity varied between runs, so it is not asserted: what is, below,
                    # is that every run ends and no partition is dropped twice.
                    for _ in range(50):  # at most 5 s
                        waiting = probe.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity"
                                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                            )
                        ).scalar_one()
                        if waiting == len(engines):
                            break
                        threading.Event().wait(0.1)
                blocker.rollback()
            runs.join(timeout=120)
        finally:
            for e in engines[1:]:
                e.dispose()
        assert len(results) == len(engines)
        with engine.connect() as conn:
            assert all(partition_days(conn, table) == [] for table in PARTITIONED)
    assert sum(r.partitions_dropped for r in results) == len(days) * len(PARTITIONED)
    assert all(not rows for rows in dump(postgres_url).values())
