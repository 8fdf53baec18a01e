"""Mid-call quality is judged over the last ~10 s, however often the collector reports the call."""

from callqual.detector.live_calls import LiveCalls
from callqual.schemas import StreamRecord
from tests.detector.rules.factories import stream


def _report(last_ts: float, expected: int, lost: int) -> StreamRecord:
    return stream(
        first_ts=90.0,
        last_ts=last_ts,
        expected=expected,
        lost=lost,
        lost_rfc3550=lost,
        packets=expected - lost,
    )


def test_the_first_report_is_judged_from_the_stream_start_then_tick_to_tick() -> None:
    live = LiveCalls(max_calls=10)
    live.on_report("c", _report(100.0, 500, 0))
    (first,) = live.intervals("c")
    assert (first.since_ts, first.expected, first.lost) == (90.0, 500, 0)
    live.on_report("c", _report(109.98, 1000, 10))
    (second,) = live.intervals("c")
    assert (second.since_ts, second.expected, second.lost, second.packets) == (100.0, 500, 10, 490)


def test_reports_every_2_s_are_judged_over_the_last_10_s_not_the_last_2() -> None:
    live = LiveCalls(max_calls=10)
    live.on_report("c", _report(100.0, 500, 0))
    lost = 0
    for k in range(1, 8):  # a call reported every 2 s (its other direction went quiet)
        lost += 8 if k == 5 else 0  # one burst: 8 of 100 packets in the 2 s before 110
        live.on_report("c", _report(100.0 + 2 * k, 500 + 100 * k, lost))
        (iv,) = live.intervals("c")
        assert iv.stream.last_ts - iv.since_ts >= 9.0 or iv.since_ts == 90.0
        assert iv.lost / iv.expected < 0.05  # the burst is 8 % of its 2 s, not of the window
    assert (iv.since_ts, iv.expected, iv.lost) == (104.0, 500, 8)


def test_history_is_bounded() -> None:
    live = LiveCalls(max_calls=10)
    for k in range(100):
        live.on_report("c", _report(100.0 + 0.5 * k, 500 + 25 * k, 0))
    (iv,) = live.intervals("c")
    assert iv.stream.last_ts - iv.since_ts == 4.0  # 8 reports back: the window is cut, not grown
