"""The media flow table on its own: when a call's streams close, and the bound on streams."""

from __future__ import annotations

from collections import Counter
from typing import Any

from callqual.collector.config import CollectorConfig
from callqual.collector.frame_guard import FrameGuard
from callqual.collector.media.flow_table import MediaFlowTable
from callqual.collector.media.media_registry import MediaBinding, MediaRegistry
from callqual.collector.packet import Payload
from callqual.schemas import AnyEvent, RtpStreamReport
from tests.collector.callcraft import rtp

_BINDING = MediaBinding("call-1", False, {0: "PCMU/8000"})


def _table(**config: Any) -> tuple[MediaFlowTable, dict[str, float], list[AnyEvent]]:
    events: list[AnyEvent] = []
    ends: dict[str, float] = {}
    errors: Counter[str] = Counter()
    table = MediaFlowTable(
        events.append,
        CollectorConfig(**config),
        MediaRegistry(),
        ends,
        FrameGuard(errors),
        errors=errors,
        skipped=Counter(),
        dropped=Counter(),
        counters=Counter(),
    )
    return table, ends, events


def _send(table: MediaFlowTable, ssrc: int, start: float, seconds: float) -> None:
    """20 ms PCMU packets of one SSRC from 10.0.0.1:4000 to 10.0.0.2:6000, ticking as the collector does."""
    for i in range(int(seconds * 50)):
        ts = start + i * 0.02
        if ts >= table.next_tick:
            table.tick(ts)
        data = rtp(i, 160 * i, ssrc, bytes(160))
        p = Payload(i + 1, ts, "10.0.0.1", 4000, "10.0.0.2", 6000, "udp", data)
        table.on_media(table.flow_of(p, _BINDING, i + 1, None), ts, i + 1, data)


def _finals(events: list[AnyEvent]) -> list[tuple[int, int]]:
    return [(e.ssrc, e.packets) for e in events if isinstance(e, RtpStreamReport) and e.final]


def test_an_ended_calls_streams_close_once_idle_for_the_grace() -> None:
    table, ends, events = _table(ended_call_grace_s=2.0)
    _send(table, 0x1234, 100.0, 3.0)  # last packet at 102.98
    ends["call-1"] = 103.0
    table.tick(104.5)  # idle 1.5 s: not yet
    assert _finals(events) == []
    table.tick(105.5)  # idle 2.5 s, ended 2.5 s ago
    assert _finals(events) == [(0x1234, 150)]
    assert table.flows == {} and table.n_streams == 0


def test_a_live_calls_idle_stream_waits_for_the_idle_timeout() -> None:
    table, _, events = _table(stream_idle_timeout_s=60.0)
    _send(table, 0x1234, 100.0, 1.0)
    table.tick(150.0)
    assert _finals(events) == []
    table.tick(161.0)
    assert _finals(events) == [(0x1234, 50)]


def test_past_max_streams_a_new_ssrc_is_dropped_and_counted() -> None:
    table, _, events = _table(max_streams=1)
    _send(table, 0x1111, 100.0, 0.2)
    _send(table, 0x2222, 100.2, 0.2)
    table.finish()
    assert _finals(events) == [(0x1111, 10)]
    assert table.dropped["rtp.stream_table_full"] == 10
