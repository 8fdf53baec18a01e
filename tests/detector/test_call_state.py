"""Call-state updates for calls in flight, on a replay."""

from itertools import pairwise
from pathlib import Path

from callqual.collector.capture.pcap_file import open_capture
from callqual.detector.detector import Detector
from callqual.detector.rule_engine import RuleEngine
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import CallRecord, CallStateUpdate
from callqual.simulator.engine import simulate


def replay_states(path: Path) -> tuple[list[CallStateUpdate], list[CallRecord]]:
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
    updates, records = replay_states(capture)
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
