"""``StoreService.decode`` without a broker: the records of the calls and streams topics are told
apart as ``json.loads`` tells them, also where orjson (tried first) refuses the text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from callqual.store.records import record_kind
from callqual.store.service import StoreMetrics, StoreService, StoreSettings, build_engine
from callqual.transport import TOPICS, Message
from tests.store.captures import analyse


def _json_loads_kind(value: bytes) -> object:
    doc = json.loads(value)
    return doc.get("kind") if isinstance(doc, dict) else None


@pytest.mark.parametrize(
    "value",
    [
        b'{"kind": "call_record", "x": 1}',
        b'{"kind": "stream_record", "s": "\\udcff"}',  # a lone surrogate escape: orjson refuses it
        b'{"kind": "call_record", "n": NaN}',
        b'{"kind": 7}',
        b"[1, 2]",
        '{"kind": "call_record"}'.encode("utf-16"),  # json.loads detects UTF-16 in bytes
        b"{not json",
        b"\xff",
        b"",
    ],
)
def test_kind_is_what_json_loads_reads(value: bytes) -> None:
    try:
        expected: object = _json_loads_kind(value)
    except ValueError:
        with pytest.raises(ValueError):
            record_kind(value)
        return
    assert record_kind(value) == expected


def test_call_and_stream_records_decode_and_bent_ones_are_refused_as_before(tmp_path: Path) -> None:
    report, _ = analyse("rtp-pcap/aaa.pcap")
    settings = StoreSettings(url=f"sqlite:///{tmp_path / 's.db'}", port=0)
    engine = build_engine(settings)
    try:
        service = StoreService(engine, settings, StoreMetrics(CollectorRegistry()))
        call, stream = report.calls[0], report.streams[0]
        bent = call.model_dump_json().replace('"from_uri":"', '"from_uri":"\\udcff', 1).encode()
        records = [
            (TOPICS.calls, call.model_dump_json().encode()),
            (TOPICS.streams, stream.model_dump_json().encode()),
        ]
        batches = [service.decode(Message(t, 0, n, None, v)) for n, (t, v) in enumerate(records)]
        # orjson refuses the lone surrogate, json.loads finds the kind, pydantic refuses the record
        with pytest.raises(ValidationError, match="json_invalid"):
            service.decode(Message(TOPICS.calls, 0, 2, None, bent))
        with pytest.raises(ValueError, match="unexpected kind"):
            service.decode(Message(TOPICS.calls, 0, 3, None, b"[1, 2]"))
    finally:
        engine.dispose()
    assert batches[0].calls == [call]
    assert batches[1].streams == [stream]
