"""Call-state updates for calls in flight, on a replay, and the store rows they keep from the INVITE on."""

from itertools import pairwise
from pathlib import Path

from sqlalchemy import select

from callqual.collector.capture.pcap_file import open_capture
from callqual.detector.detector import Detector
from callqual.detector.rule_engine import RuleEngine
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import CallRecord, CallStateUpdate
from callqual.simulator.engine import simulate
from callqual.store.engine import open_store
from callqual.store.schema import calls
from callqual.store.writer import Batch, StoreWriter


def _replay(path: Path) -> tuple[list[CallStateUpdate], list[CallRecord]]:
    updates: list[CallStateUpdate] = []
    records: list[CallRecord] = []
    pipeline = EmbeddedPipeline()
    pipeline.detector = Detector(
        lambda out: records.append(out) if isinstance(out, CallRecord) else None,
        RuleEngine(),
        on_call_state=updates.append,
    )
    with open_capture(path) as capture:
        pipeline.run(capture)
        pipeline.finish()
    return updates, records


def test_calls_in_flight_are_published_trying_ringing_answered_then_quality(tmp_path: Path) -> None:
    capture = tmp_path / "clean.pcap"
    simulate("clean", capture, seed=7, calls=3, duration=40)
    updates, records = _replay(capture)
    assert len(records) == 3
    for record in records:
        mine = [u for u in updates if u.call_id == record.call_id]
        states = [u.state for u in mine]
        assert states[:3] == ["trying", "ringing", "answered"]
        assert mine[0].ts == record.start_ts
        quality = [u for u in mine[3:] if u.streams]
        # 40 s of talk, 10 s interval reports: three or four quality updates, rate-limited
        assert 3 <= len(quality) <= 4
        assert all(b.ts - a.ts >= 5.0 for a, b in pairwise(mine) if b.streams)
        assert all(u.mos is not None and u.mos > 4.0 and u.loss_ratio == 0.0 for u in quality)
        assert all(u.ts < record.end_ts for u in mine)  # type: ignore[operator]


def test_the_store_keeps_a_row_from_the_invite_and_the_record_replaces_it(tmp_path: Path) -> None:
    capture = tmp_path / "clean.pcap"
    simulate("clean", capture, seed=7, calls=1, duration=20)
    updates, (record,) = _replay(capture)
    engine = open_store(f"sqlite:///{tmp_path / 'calls.db'}")
    writer = StoreWriter(engine)

    def row() -> dict[str, object]:
        with engine.connect() as conn:
            return dict(conn.execute(select(calls).where(calls.c.call_id == record.call_id)).mappings().one())

    writer.write_batch(Batch(call_states=updates[:1]))
    assert row()["state"] == "in_progress" and row()["closed_by"] == "live"
    writer.write_batch(Batch(call_states=updates[1:]))
    assert row()["state"] == "answered" and row()["worst_mos"] is not None
    writer.write_batch(Batch(calls=[record]))
    assert row()["state"] == "completed" and row()["closed_by"] == "signalling"
    writer.write_batch(Batch(call_states=updates[-1:]))  # late, from another topic: ignored
    assert row()["state"] == "completed" and row()["end_ts"] is not None
