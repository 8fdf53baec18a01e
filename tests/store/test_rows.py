"""Message rows: the keys ``message_row`` hashes in line are the documented ``message_key`` and
``transaction_key`` (stored keys must never change), and the correlation headers are those found
by the header parser, on real captures (one carries a P-Charging-Vector)."""

from __future__ import annotations

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnyEvent, SipMessageEvent
from callqual.store.rows import (
    CORRELATION_HEADERS,
    correlation_headers,
    message_key,
    message_row,
    transaction_key,
)
from tests.store.captures import CAPTURES, capture


def _messages(name: str) -> list[SipMessageEvent]:
    out: list[SipMessageEvent] = []

    def keep(event: AnyEvent) -> None:
        if isinstance(event, SipMessageEvent):
            out.append(event)

    pipeline = EmbeddedPipeline(on_event=keep)
    with open_capture(capture(name)) as cap:
        pipeline.run(cap)
        pipeline.finish()
    return out


@pytest.mark.parametrize("name", [*CAPTURES, "heplify/sip_sctp.pcap"])
def test_message_rows_carry_the_documented_keys_and_headers(name: str) -> None:
    messages = _messages(name)
    assert messages
    for m in messages:
        row = message_row(m)
        assert row["id"] == message_key(m)
        assert row["txn_key"] == transaction_key(m, m.method if m.is_request else str(m.status_code))
        assert {h: row[h] for h in CORRELATION_HEADERS} == correlation_headers(m.raw)


def test_a_charging_vector_is_found_and_a_message_without_raw_bytes_is_keyed() -> None:
    rows = [message_row(m) for m in _messages("heplify/sip_sctp.pcap")]
    assert any(r["p_charging_vector"] for r in rows)
    bare = _messages("rtp-pcap/aaa.pcap")[0].model_copy(update={"raw": b""})
    assert message_row(bare)["id"] == message_key(bare)
