"""The store keeps a call row from its INVITE on (call-state updates); the call's record replaces it."""

from pathlib import Path

import pytest
from sqlalchemy import select

from callqual.simulator.engine import simulate
from callqual.store.schema import calls
from callqual.store.writer import Batch, StoreWriter
from tests.detector.test_call_state import replay_states
from tests.store.captures import store


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_store_keeps_a_row_from_the_invite_and_the_record_replaces_it(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    capture = tmp_path / "clean.pcap"
    simulate("clean", capture, seed=7, calls=1, duration=20)
    updates, (record,) = replay_states(capture)
    url = f"sqlite:///{tmp_path / 'c.db'}" if engine == "sqlite" else request.getfixturevalue("postgres_url")
    with store(url) as db:
        writer = StoreWriter(db)

        def row() -> dict[str, object]:
            with db.connect() as conn:
                return dict(
                    conn.execute(select(calls).where(calls.c.call_id == record.call_id)).mappings().one()
                )

        writer.write_batch(Batch(call_states=updates[:1]))
        assert row()["state"] == "in_progress" and row()["closed_by"] == "live"
        writer.write_batch(Batch(call_states=updates[1:]))
        assert row()["state"] == "answered" and row()["worst_mos"] is not None
        writer.write_batch(Batch(calls=[record]))
        assert row()["state"] == "completed" and row()["closed_by"] == "signalling"
        writer.write_batch(Batch(call_states=updates[-1:]))  # late, from another topic: ignored
        assert row()["state"] == "completed" and row()["end_ts"] is not None
