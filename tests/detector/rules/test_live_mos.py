"""Mid-call MOS: the E-model over a stream's last interval(s), held to the whole-call floor."""

from callqual.detector.call_context import CallContext
from callqual.detector.emodel import stream_mos
from callqual.detector.live_calls import StreamInterval
from callqual.detector.rules.in_progress import LiveLowMos, LiveView, build_live_rules
from callqual.detector.rules.settings import RuleSettings
from callqual.schemas import Alert
from tests.detector.rules.factories import ctx, record, stream

NOW = 1032.0


def _interval(lost: int, expected: int = 500, jitter_ms: float = 1.0, /, **kw: object) -> StreamInterval:
    """The last 10 s of a PCMU stream (20 ms) that lost ``lost`` of ``expected`` in them.

    Keywords are the whole stream's fields (its cumulative counts, codec, ...).
    """
    st = stream(last_ts=NOW - 0.02, **kw)
    return StreamInterval(st, expected, lost, NOW - 10.0, expected - lost, jitter_ms)


def _view(*intervals: StreamInterval) -> LiveView:
    call: CallContext = ctx(record(end_ts=None, state="answered"))
    call.streams = [iv.stream for iv in intervals]
    return LiveView(call, NOW, list(intervals), True, NOW)


def _judge(*intervals: StreamInterval) -> Alert | None:
    return LiveLowMos(RuleSettings()).judge(_view(*intervals))


def test_the_live_rules_judge_mid_call_mos() -> None:
    """20 % loss over the last 10 s: a low_mos alert while the call is up, under the whole-call id."""
    alerts = [a for r in build_live_rules(RuleSettings()) if (a := r.judge(_view(_interval(100))))]
    (alert,) = [a for a in alerts if a.rule == "low_mos"]
    assert alert.in_progress and alert.summary.endswith("(call in progress)")
    assert alert.severity == "critical"
    mos = alert.details["interval_mos"]
    assert isinstance(mos, float) and mos < RuleSettings().low_mos_critical
    assert alert.details["interval_loss_ratio"] == 0.2
    assert alert.details["since_ts"] == NOW - 10.0
    assert alert.details["window_s"] == 9.98
    assert alert.details["codec"] == "PCMU"


def test_mid_call_only_below_the_critical_floor() -> None:
    """A dip between the two floors (10 % loss) waits for the whole call; 20 % does not."""
    s = RuleSettings()
    assert _judge(_interval(50)) is None  # 10 %: a warning, if the whole call says so
    critical = _judge(_interval(100))
    assert critical is not None and critical.severity == "critical"
    mos = critical.details["interval_mos"]
    assert isinstance(mos, float) and mos < s.low_mos_critical
    assert critical.details["threshold"] == s.low_mos_critical
    assert _judge(_interval(10)) is None  # 2 %: MOS above the floor
    assert _judge(_interval(0)) is None


def test_the_interval_is_judged_not_the_whole_stream() -> None:
    # a stream that lost 20 % so far but nothing lately is fine now; the reverse is not
    assert _judge(_interval(0, lost=3000, expected=15000, packets=12000, mos=2.5)) is None
    assert _judge(_interval(100, lost=0)) is not None


def test_an_interval_spanning_the_whole_stream_scores_as_the_whole_call_does() -> None:
    """Same E-model, same codec impairments, same delay rule: the final record's MOS."""
    whole = stream(last_ts=NOW - 0.02, packets=400, expected=500, lost=100, mean_jitter_ms=12.0)
    alert = _judge(StreamInterval(whole, 500, 100, whole.first_ts, 400, 12.0))
    scored = stream_mos(whole)
    assert alert is not None and scored is not None
    assert alert.details["interval_mos"] == round(scored[1], 3)


def test_the_worst_stream_is_the_one_reported() -> None:
    better = _interval(50)
    worse = _interval(150, ssrc=0x5678)
    alert = _judge(better, worse)
    assert alert is not None and alert.details["ssrc"] == 0x5678


def test_too_few_packets_a_short_window_or_an_unreliable_capture_say_nothing() -> None:
    assert _judge(_interval(20, expected=40)) is None  # 20 packets: below quality_min_packets
    young = stream(first_ts=NOW - 3.0, last_ts=NOW - 0.02)  # its first report: 3 s from its start
    assert _judge(StreamInterval(young, 150, 30, young.first_ts, 120, 1.0)) is None
    older = stream(first_ts=NOW - 20.0, last_ts=NOW - 0.02)  # reported 9.5 s before: a window
    assert _judge(StreamInterval(older, 475, 95, NOW - 9.5, 380, 1.0)) is not None
    assert _judge(_interval(100, unreliable=True)) is None


def test_a_codec_that_scores_low_on_a_clean_path_is_no_network_problem() -> None:
    # G.726 at 16 kbit/s (Ie 50) is below the floor with no loss at all: the codec, not the network
    assert _judge(_interval(0, codec="G726-16")) is None
    assert _judge(_interval(100, codec="G726-16")) is not None


def test_a_disabled_low_mos_rule_has_no_mid_call_version() -> None:
    rules = build_live_rules(RuleSettings(disabled_rules=["low_mos"]))
    assert "low_mos" not in {r.id for r in rules}
