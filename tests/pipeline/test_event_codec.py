"""``event_codec``: the collector's events cross ``analyze --split``'s pipe exactly as they left.

Every event kind (SIP, malformed SIP, RTP stream reports, RTCP with report
blocks, SDP media nested in SIP) from real shared captures and simulated
traffic comes back equal, with the same fields-set, field order, JSON and
value types; a partially set model keeps what was set; a value marshal does
not write takes pickle; and bytes that are no batch are a clear error.
"""

from pathlib import Path

import numpy as np
import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.source_rules import SourceRules, SourceVerdict
from callqual.pipeline.event_codec import CodecError, Item, decode_batch, encode_batch
from callqual.pipeline.split import source_rules_first
from callqual.schemas import SdpMedia
from callqual.schemas.base import WireModel
from callqual.simulator import simulate
from tests.shared_captures import PCAPS

_CAPTURES = sorted(p for p in PCAPS.rglob("*") if p.suffix in {".pcap", ".pcapng", ".cap"})


def _items(path: Path) -> list[Item]:
    """What the collector hands the detector, ticks included, as ``--split``'s child sends it."""
    items: list[Item] = []
    collector = Collector(items.append, on_tick=items.append)
    with open_capture(path) as capture:
        collector.run(capture)
        collector.finish()
    return items


def _assert_same(back: list[Item], items: list[Item]) -> None:
    assert back == items
    for b, i in zip(back, items, strict=True):
        assert type(b) is type(i)
        if isinstance(i, WireModel):
            assert isinstance(b, WireModel)
            assert list(b.__dict__) == list(i.__dict__)
            assert b.__pydantic_fields_set__ == i.__pydantic_fields_set__
            assert b.model_dump_json() == i.model_dump_json()
            assert [type(v) for v in b.__dict__.values()] == [type(v) for v in i.__dict__.values()]


@pytest.fixture(scope="module")
def shared_items() -> list[Item]:
    items: list[Item] = []
    for path in _CAPTURES:
        items.extend(_items(path))
    return items


def test_every_event_of_the_shared_captures_comes_back_the_same(shared_items: list[Item]) -> None:
    kinds = {getattr(i, "kind", "tick") for i in shared_items}
    assert kinds == {"sip_message", "sip_malformed", "rtp_stream", "rtcp", "tick"}
    assert any(getattr(i, "sdp", None) for i in shared_items)
    assert any(getattr(i, "blocks", None) for i in shared_items)
    blob = encode_batch(shared_items, 1234)
    assert blob[:1] == b"M"  # all plain values: marshal, not the pickle fallback
    extra, back = decode_batch(blob)
    assert extra == 1234
    _assert_same(back, shared_items)


def test_simulated_traffic_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "load.pcap"
    simulate("load", path, calls=12, duration=20)
    items = _items(path)
    assert len(items) > 200
    back: list[Item] = []
    for start in range(0, len(items), 64):
        back.extend(decode_batch(encode_batch(items[start : start + 64]))[1])
    _assert_same(back, items)


def test_the_source_rules_verdicts_cross_in_place() -> None:
    """``--split``'s child sends what its source rules said of an event (alerts, or "a relayed
    copy") just before the event: in place, alerts equal, through marshal."""
    items: list[Item] = []
    for name in ("nDPI/fuzz-2006-06-26-2594.pcap", "heplify/sip_tcp_websocket.pcap"):
        collector = Collector(
            source_rules_first(SourceRules(RuleSettings()), items.append), on_tick=items.append
        )
        with open_capture(PCAPS / name) as capture:
            collector.run(capture)
            collector.finish()
    verdicts = [i for i, item in enumerate(items) if isinstance(item, SourceVerdict)]
    assert any(items[i].alerts for i in verdicts) and any(items[i].relayed for i in verdicts)  # type: ignore[union-attr]
    assert all(getattr(items[i + 1], "kind", "") in ("sip_message", "sip_malformed") for i in verdicts)
    blob = encode_batch(items)
    assert blob[:1] == b"M"
    back = decode_batch(blob)[1]
    assert back == items
    assert [type(b) for b in back] == [type(i) for i in items]


def test_a_partially_set_model_keeps_its_fields_set() -> None:
    fields = {"media": "audio", "connection_ip": None, "port": 4000, "proto": "RTP/AVP", "payload_types": [0]}
    media = SdpMedia.model_validate(fields)
    assert media.__pydantic_fields_set__ != set(SdpMedia.model_fields)
    _, items = _items_of(PCAPS / "rtp-pcap/SIP_DTMF2.pcap")
    sip = next(i for i in items if getattr(i, "sdp", None))
    partial = sip.model_copy(update={"sdp": [media]})  # type: ignore[union-attr]
    back = decode_batch(encode_batch([partial]))[1][0]
    assert back == partial
    back_media = back.sdp[0]  # type: ignore[union-attr]
    assert back_media.__pydantic_fields_set__ == media.__pydantic_fields_set__
    assert back_media.model_dump_json(exclude_unset=True) == media.model_dump_json(exclude_unset=True)


def _items_of(path: Path) -> tuple[Path, list[Item]]:
    return path, _items(path)


def test_a_value_marshal_cannot_write_goes_through_pickle() -> None:
    _, items = _items_of(PCAPS / "rtp-pcap/SIP_DTMF2.pcap")
    sip = next(i for i in items if getattr(i, "kind", None) == "sip_message")
    odd = sip.model_copy(update={"ts": np.float64(sip.ts)})  # type: ignore[union-attr]
    blob = encode_batch([1.5, odd])
    assert blob[:1] == b"P"
    _, back = decode_batch(blob)
    assert back == [1.5, odd]
    assert type(back[1].ts) is np.float64  # type: ignore[union-attr]


@pytest.mark.parametrize("data", [b"", b"X123", b"M", b"M\x00garbage", b"Pnot a pickle", b"M" + b"\xe9" * 20])
def test_bytes_that_are_no_batch_are_a_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError, match="not an encoded batch"):
        decode_batch(data)
