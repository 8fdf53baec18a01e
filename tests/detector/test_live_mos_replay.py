"""Mid-call MOS on a replay: the low_mos alert while the call is up, then one alert per call in the report.

Simulated calls (continuous media, BYE after 60 s of talk) with every fifth packet the caller
sends dropped: from 15 s after answer to the end (the whole call is bad too: the final record
confirms the alert), or for 12 s in the middle only (the whole call scores above the floor: the
mid-call alert is closed unconfirmed, as every mid-call rule's is), and one call left clean.
"""

import pytest

from callqual.detector.rules.settings import RuleSettings
from callqual.schemas import CallRecord
from callqual.simulator.engine import simulate
from tests.detector.live_replay import Replay, filter_udp, replay

SIP_PORT = 5060
#: caller IP -> (from, to) seconds after answer during which every fifth caller packet is lost
LOSSY = {"10.1.0.10": (15.0, 1e9), "10.1.0.11": (20.0, 32.0)}
HEALTHY = "10.1.0.12"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    tmp = tmp_path_factory.mktemp("live-mos")
    clean = tmp / "clean.pcap"
    simulate("clean", clean, seed=7, calls=3, duration=60)
    answers = {c.caller_ip: c.answer_ts for c in replay(clean).report.calls}
    windows = {ip: (answers[ip] + a, answers[ip] + b) for ip, (a, b) in LOSSY.items()}  # type: ignore[operator]
    sent = dict.fromkeys(LOSSY, 0)

    def keep(ts: float, src: str, sport: int, dst: str, dport: int) -> bool:
        window = windows.get(src)
        if window is None or SIP_PORT in (sport, dport) or not window[0] <= ts < window[1]:
            return True
        sent[src] += 1
        return sent[src] % 5 != 0

    lossy = tmp / "lossy.pcap"
    assert filter_udp(clean, lossy, keep) > 500
    return replay(lossy)


def _call(run: Replay, caller_ip: str) -> CallRecord:
    (call,) = [c for c in run.report.calls if c.caller_ip == caller_ip]
    return call


def test_low_mos_is_alerted_while_the_call_is_up_and_confirmed_by_the_whole_call(run: Replay) -> None:
    call = _call(run, "10.1.0.10")
    assert call.end_ts is not None
    at, first = run.versions("low_mos", call.call_id)[0]
    assert first.in_progress and first.summary.endswith("(call in progress)")
    assert at < call.end_ts  # raised before the BYE
    mos = first.details["interval_mos"]
    assert isinstance(mos, float) and mos < RuleSettings().low_mos_warning
    since = first.details["since_ts"]
    assert isinstance(since, float) and since < at
    (final,) = run.final("low_mos", call.call_id)
    assert final.alert_id == first.alert_id and not final.in_progress
    assert "confirmed" not in final.details and "min_mos" in final.details  # the whole call's version


def test_a_burst_the_whole_call_does_not_confirm_is_closed_unconfirmed(run: Replay) -> None:
    call = _call(run, "10.1.0.11")
    assert call.end_ts is not None
    at, first = run.versions("low_mos", call.call_id)[0]
    assert first.in_progress and at < call.end_ts
    (final,) = run.final("low_mos", call.call_id)
    assert final.alert_id == first.alert_id and not final.in_progress
    assert final.details["confirmed"] == 0
    assert final.details["interval_mos"] == first.details["interval_mos"]
    assert not final.summary.endswith("(call in progress)")
    assert final.last_ts == call.end_ts
    assert "low_mos" in call.problems  # it happened: still one of the call's problems


def test_the_clean_call_has_no_low_mos(run: Replay) -> None:
    call = _call(run, HEALTHY)
    assert run.versions("low_mos", call.call_id) == []


def test_one_low_mos_alert_per_call_in_the_report(run: Replay) -> None:
    low = [a for a in run.report.alerts if a.rule == "low_mos"]
    assert sorted(a.call_id for a in low) == sorted(_call(run, ip).call_id for ip in LOSSY)
    assert not any(a.in_progress for a in run.report.alerts)
