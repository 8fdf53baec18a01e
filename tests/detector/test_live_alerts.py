"""Alerts before the call ends, on replays: failures at once, mid-call quality while the call is up.

The captures: simulated calls (continuous G.711/G.729, BYE after 40 s of talk) with media cut
as the fault needs (one direction stops mid-call; a call with no RTP at all), and a real capture
of failed calls (Wireshark's SIP sample, 407 then 403, 408, 480). Each problem gives exactly one
alert in the report (the latest version of its id), and the in-progress version came first.
"""

from pathlib import Path

import pytest

from callqual.simulator.engine import simulate
from tests.detector.live_replay import Replay, filter_udp, replay
from tests.shared_captures import PCAPS

SIP_PORT = 5060
#: call 0 (10.1.0.10 <-> 10.2.0.10): the callee's RTP stops 12 s after answer
ONE_WAY_CALLEE = "10.2.0.10"
STOP_AFTER_ANSWER_S = 12.0
#: call 1 (10.1.0.11 <-> 10.2.0.11): no RTP at all
NO_MEDIA_HOSTS = {"10.1.0.11", "10.2.0.11"}

#: the replay, and when the one-way fault began (capture time)
Faulty = tuple[Replay, dict[str, float]]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Replay, dict[str, float]]:
    tmp = tmp_path_factory.mktemp("live")
    clean = tmp / "clean.pcap"
    simulate("clean", clean, seed=7, calls=3, duration=40)
    answers = {c.caller_ip: c.answer_ts for c in replay(clean).report.calls}
    stop_at = answers["10.1.0.10"] + STOP_AFTER_ANSWER_S  # type: ignore[operator]

    def keep(ts: float, src: str, sport: int, dst: str, dport: int) -> bool:
        if SIP_PORT in (sport, dport):
            return True
        if src in NO_MEDIA_HOSTS or dst in NO_MEDIA_HOSTS:
            return False
        return not (src == ONE_WAY_CALLEE and ts >= stop_at)

    cut = tmp / "faulty.pcap"
    assert filter_udp(clean, cut, keep) > 1000
    return replay(cut), {"stop_at": stop_at}


def _call(run: Replay, caller_ip: str):  # type: ignore[no-untyped-def]
    (call,) = [c for c in run.report.calls if c.caller_ip == caller_ip]
    return call


def test_one_way_audio_mid_call_is_alerted_while_the_call_is_up(faulty: Faulty) -> None:
    run, marks = faulty
    call = _call(run, "10.1.0.10")
    versions = run.versions("one_way_audio", call.call_id)
    at, first = versions[0]
    assert first.in_progress and first.summary.endswith("(call in progress)")
    assert first.details["silent_direction"] == "callee_to_caller"
    assert at < call.end_ts  # raised before the BYE
    assert at - marks["stop_at"] < 15.0
    (final,) = run.final("one_way_audio", call.call_id)
    assert final.alert_id == first.alert_id and not final.in_progress
    assert final.last_ts == call.end_ts
    assert "one_way_audio" in call.problems


def test_answered_call_without_rtp_is_alerted_while_the_call_is_up(faulty: Faulty) -> None:
    run, _ = faulty
    call = _call(run, "10.1.0.11")
    at, first = run.versions("no_media", call.call_id)[0]
    assert first.in_progress
    assert at < call.end_ts
    assert at - call.answer_ts < 15.0
    (final,) = run.final("no_media", call.call_id)
    assert final.alert_id == first.alert_id and not final.in_progress
    assert "(call in progress)" not in final.summary


def test_a_healthy_call_beside_them_raises_nothing(faulty: Faulty) -> None:
    run, _ = faulty
    call = _call(run, "10.1.0.12")
    assert [a for _, a in run.raised if a.call_id == call.call_id] == []


def test_every_problem_is_one_alert_in_the_report(faulty: Faulty) -> None:
    run, _ = faulty
    ids = [a.alert_id for a in run.report.alerts]
    assert len(ids) == len(set(ids))
    assert sorted((a.rule, a.call_id) for a in run.report.alerts) == sorted(
        {(a.rule, a.call_id) for _, a in run.raised}
    )
    assert not any(a.in_progress for a in run.report.alerts)


def test_failed_calls_are_alerted_at_their_final_response() -> None:
    """Wireshark's SIP sample: 407 then 403 (twice), 408 after CANCEL, 480 after ringing."""
    run = replay(PCAPS / "zeek" / "wireshark.pcap")
    failed = [c for c in run.report.calls if c.final_status is not None and c.final_status >= 400]
    assert len(failed) == 4
    for call in failed:
        at, first = run.versions("call_failed", call.call_id)[0]
        assert call.end_ts is not None and 0.0 <= call.end_ts - at < 1.0
        assert not first.in_progress
        (final,) = run.final("call_failed", call.call_id)
        assert final == first  # the finished call confirms it unchanged


def test_a_challenge_answered_by_a_successful_retry_is_no_failure(tmp_path: Path) -> None:
    """The demo's 407-then-200 call never raises call_failed; its auth loops do, at the second challenge."""
    capture = tmp_path / "demo.pcap"
    simulate("demo", capture, seed=5)
    run = replay(capture)
    retried = [c for c in run.report.calls if c.final_status == 200 and "407" in c.responses]
    assert retried
    for call in retried:
        assert [a for _, a in run.raised if a.call_id == call.call_id and a.rule == "call_failed"] == []
    loops = [c for c in run.report.calls if c.final_status in (401, 407)]
    assert len(loops) == 2
    for call in loops:
        # every credential refused: the second challenge is the failure, alerted at once
        at, first = run.versions("call_failed", call.call_id)[0]
        assert call.end_ts is not None and 0.0 <= call.end_ts - at < 1.0
        assert first.details["failure_class"] == "auth"


#: heplify's real capture: call 12013223 answered at 1105725491.44, RTP both ways (silence-suppressed,
#: ~23 packets/s from 200.57.7.204:8000) until the capture ends at 1105725517.87 with no BYE
HEPLIFY = PCAPS / "heplify" / "rtp_rtcp_sip_ipv4_udp.pcap"
HEPLIFY_CALL = "12013223@200.57.7.195"
HEPLIFY_END = 1105725517.874679


def test_real_capture_media_cut_one_way_is_alerted_before_the_capture_ends(tmp_path: Path) -> None:
    cut = tmp_path / "oneway.pcap"
    stop_at = 1105725496.0
    assert filter_udp(HEPLIFY, cut, lambda ts, src, sport, *_: not (sport == 8000 and ts >= stop_at)) > 100
    run = replay(cut)
    at, first = run.versions("one_way_audio", HEPLIFY_CALL)[0]
    assert first.in_progress and first.details["silent_direction"] == "callee_to_caller"
    # this sender suppresses silence: 15 s of quiet are needed before calling it a stop
    assert 15.0 <= at - stop_at < 25.0 and at < HEPLIFY_END
    assert len(run.final("one_way_audio", HEPLIFY_CALL)) == 1


def test_real_capture_answered_without_rtp_is_alerted_before_the_capture_ends(tmp_path: Path) -> None:
    cut = tmp_path / "nomedia.pcap"
    assert filter_udp(HEPLIFY, cut, lambda ts, src, sport, dst, dport: 8000 not in (sport, dport)) > 100
    run = replay(cut)
    at, first = run.versions("no_media", HEPLIFY_CALL)[0]
    assert first.in_progress and at < HEPLIFY_END
    assert len(run.final("no_media", HEPLIFY_CALL)) == 1
