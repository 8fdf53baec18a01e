"""``StoreWriter.write_batch`` builds a batch's rows before its transaction (``prepared``): a
message that cannot be stored must still leave nothing of its batch behind."""

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnyEvent, SipMessageEvent
from callqual.store.schema import alerts, calls, sip_messages, stream_intervals, streams
from callqual.store.writer import Batch, StoreWriter
from tests.store.captures import capture, store

CAPTURE = "heplify/rtp_rtcp_sip_ipv4_udp.pcap"
TABLES = (calls, streams, stream_intervals, alerts, sip_messages)


def _batch() -> Batch:
    kept: list[AnyEvent] = []
    pipeline = EmbeddedPipeline(on_event=kept.append)
    with open_capture(capture(CAPTURE)) as cap:
        pipeline.run(cap)
        pipeline.finish()
        report = pipeline.report(CAPTURE)
    return Batch(
        calls=list(report.calls),
        streams=list(report.streams),
        alerts=list(report.alerts),
        messages=[e for e in kept if isinstance(e, SipMessageEvent)],
    )


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
def test_a_message_that_cannot_be_stored_rolls_back_its_whole_batch(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'calls.db'}"
        if engine_name == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    good = _batch()
    assert good.calls and good.streams and len(good.messages) > 1
    # A time no datetime can hold: its row cannot be built (the calls and streams before it could).
    bad_message = good.messages[-1].model_copy(update={"ts": 1e20})
    bad = Batch(
        calls=good.calls,
        streams=good.streams,
        alerts=good.alerts,
        messages=[*good.messages[:-1], bad_message],
    )
    with store(url) as engine:
        writer = StoreWriter(engine)
        with pytest.raises((ValueError, OverflowError, OSError)):
            writer.write_batch(bad)
        with engine.connect() as conn:
            assert {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES
            } == {t.name: 0 for t in TABLES}
        stats = writer.write_batch(good)
        with engine.connect() as conn:
            counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES}
    assert stats.messages_stored == len(good.messages) == counts["sip_messages"]
    assert counts["calls"] == len(good.calls) and counts["streams"] == len(good.streams)
    assert counts["alerts"] == len(good.alerts)


def _write_in_child(url: str, batch: Batch) -> None:
    with store(url) as engine:
        StoreWriter(engine).write_batch(batch)


def test_a_forked_process_writes_with_a_row_builder_of_its_own(tmp_path: Path) -> None:
    """No thread survives fork(): a child must not wait on one of its parent's."""
    good = _batch()
    half = len(good.messages) // 2
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    with store(url) as engine:
        StoreWriter(engine).write_batch(Batch(messages=good.messages[:half]))  # the parent's thread runs
    child = multiprocessing.get_context("fork").Process(
        target=_write_in_child, args=(url, Batch(messages=good.messages[half:]))
    )
    child.start()
    child.join(120)  # a bound, not a timing: a deadlocked child is killed and fails the test
    if child.is_alive():
        child.kill()
        child.join()
    assert child.exitcode == 0
    with store(url) as engine, engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sip_messages)).scalar_one() == len(good.messages)
