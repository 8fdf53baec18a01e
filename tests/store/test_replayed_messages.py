"""Replayed SIP messages among new ones, on both engines: only the new ones are stored, and the
look-up of stored messages is made only for calls that have messages stored already."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnyEvent, SipMessageEvent
from callqual.store.writer import Batch, StoreWriter
from tests.store.captures import capture, store
from tests.store.test_store_postgres import dump

CAPTURE = "rtp-pcap/aaa.pcap"


def _messages() -> list[SipMessageEvent]:
    kept: list[AnyEvent] = []
    pipeline = EmbeddedPipeline(on_event=kept.append)
    with open_capture(capture(CAPTURE)) as cap:
        pipeline.run(cap)
        pipeline.finish()
    return [e for e in kept if isinstance(e, SipMessageEvent)]


def _url(engine_name: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> str:
    if engine_name == "sqlite":
        return f"sqlite:///{tmp_path / name}"
    url: str = request.getfixturevalue("postgres_server").create_database()
    return url


def _stored_id_look_ups(engine: Engine) -> list[str]:
    """The SELECTs of stored message ids ``engine`` runs from now on."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("SELECT sip_messages.id "):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    return seen


@pytest.mark.parametrize("engine_name", ["postgresql", "sqlite"])
def test_replays_among_new_messages_are_skipped_and_only_stored_calls_are_looked_up(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    messages = _messages()
    calls = list(dict.fromkeys(m.call_id for m in messages))
    assert len(calls) >= 2
    first = [m for m in messages if m.call_id == calls[0]]
    half = first[: len(first) // 2]
    rest = [m for m in messages if m not in half]
    reference = _url(engine_name, tmp_path, "once.db", request)
    with store(reference) as engine:
        StoreWriter(engine).write_batch(Batch(messages=messages))
    url = _url(engine_name, tmp_path, "replayed.db", request)
    with store(url) as engine:
        writer = StoreWriter(engine)
        look_ups = _stored_id_look_ups(engine)
        assert writer.write_batch(Batch(messages=half)).messages_stored == len(half)
        assert look_ups == []  # no call had messages stored: nothing to look for
        # The stored half again, with the rest of its call and every other call's messages
        again = writer.write_batch(Batch(messages=half + rest))
        assert again.messages_stored == len(rest) and again.messages_dropped == 0
        assert len(look_ups) == 1
        # A replay of everything: all found, nothing stored twice
        assert writer.write_batch(Batch(messages=messages)).messages_stored == 0
    assert dump(url) == dump(reference)
