"""Which calls report between interval ticks: media one way only, or a stream never reported."""

from dataclasses import dataclass

from callqual.collector.media.quiet_probe import probed_flows

NEVER = float("-inf")


@dataclass
class Flow:
    name: str
    last_ts: float
    reported_ts: float


def _probed(now: float, interval_s: float = 2.0, **calls: list[Flow]) -> list[str]:
    return [f.name for f in probed_flows(calls, now, interval_s)]


def test_a_call_flowing_both_ways_waits_for_the_interval_tick() -> None:
    assert _probed(103.0, call=[Flow("a", 102.98, 100.0), Flow("b", 102.99, 100.0)]) == []


def test_a_call_with_one_direction_quiet_reports_what_moved_since_its_last_report() -> None:
    # b stopped at 99.5, before its last report: only a has news
    call = [Flow("a", 102.98, 100.0), Flow("b", 99.5, 100.0)]
    assert _probed(103.0, call=call) == ["a"]
    # ... and at most once per interval
    assert _probed(101.5, call=call) == []
    # b stopped after its last report: both report, or the batch would show b older than it is
    assert _probed(103.0, call=[Flow("a", 102.98, 100.0), Flow("b", 101.2, 100.0)]) == ["a", "b"]


def test_a_call_with_media_one_way_only_and_a_fresh_flow_report() -> None:
    assert _probed(103.0, call=[Flow("a", 102.98, 100.0)]) == ["a"]
    assert _probed(103.0, call=[Flow("a", 102.98, 100.0), Flow("b", 102.9, NEVER)]) == ["a", "b"]


def test_a_call_quiet_both_ways_is_not_probed() -> None:
    assert _probed(110.0, call=[Flow("a", 102.0, 103.0), Flow("b", 101.0, 103.0)]) == []


def test_calls_are_judged_each_on_its_own() -> None:
    got = _probed(
        103.0,
        up=[Flow("u1", 102.98, 100.0), Flow("u2", 102.99, 100.0)],
        one_way=[Flow("o1", 102.98, 100.0), Flow("o2", 99.0, 100.0)],
    )
    assert got == ["o1"]
