"""Mid-call one-way audio: how long a silent direction must be silent, and what is never one-way."""

from callqual.detector.call_context import CallContext
from callqual.detector.rules.in_progress import LiveOneWayAudio, LiveView
from callqual.detector.rules.settings import RuleSettings
from callqual.detector.sdp_exchange import SdpExchange, SdpHistory
from callqual.schemas import Alert, StreamRecord
from tests.detector.rules.factories import CALLEE_RTP, CALLER_RTP, ctx, record, sdp, stream

ANSWER = 1002.0


def _callee(seconds: float, ptime_ms: int = 30, **kw: object) -> StreamRecord:
    """The callee's PCMA stream: ``seconds`` of media from answer at ``ptime_ms``, then nothing."""
    packets = int(seconds * 1000 / ptime_ms)
    fields = {
        "codec": "PCMA",
        "payload_type": 8,
        "payload_types": [8],
        "first_ts": ANSWER,
        "last_ts": ANSWER + seconds,
        "packets": packets,
        "expected": packets,
        "payload_bytes": packets * 8 * ptime_ms,
        **kw,
    }
    return stream(src=CALLEE_RTP, dst=CALLER_RTP, ssrc=0x5678, **fields)


def _judge(now: float, callee: list[StreamRecord], call: CallContext | None = None) -> Alert | None:
    """The call at ``now``: the caller's stream flowing up to then, the callee's as given."""
    c = call if call is not None else ctx(record(end_ts=None, state="answered"))
    caller = stream(first_ts=ANSWER, last_ts=now - 0.02, packets=int((now - ANSWER) * 50))
    c.streams = [caller, *callee]
    return LiveOneWayAudio(RuleSettings()).judge(LiveView(c, now, [], True, now))


def test_a_brief_sender_at_any_ptime_is_called_stopped_after_8_s() -> None:
    for ptime in (20, 30, 40):
        assert _judge(ANSWER + 7 + 7.9, [_callee(7, ptime)]) is None
        alert = _judge(ANSWER + 7 + 8.1, [_callee(7, ptime)])
        assert alert is not None and alert.details["sender_pace"] == "brief", ptime


def test_a_sender_offering_comfort_noise_waits_15_s() -> None:
    call = ctx(record(end_ts=None, state="answered", answered_media=[sdp(*CALLEE_RTP, [8, 13])]))
    assert _judge(ANSWER + 7 + 14.0, [_callee(7)], call) is None
    alert = _judge(ANSWER + 7 + 15.5, [_callee(7)], call)
    assert alert is not None and alert.details["sender_pace"] == "pausing"


def test_on_hold_the_held_party_is_meant_to_be_quiet() -> None:
    held = sdp(*CALLER_RTP, direction="sendonly")
    call = ctx(record(end_ts=None, state="answered", offered_media=[held]))
    assert _judge(ANSWER + 40, [_callee(7)], call) is None


def _resumed(at: float) -> CallContext:
    """A call whose latest offer/answer (a resume from hold, or new ports) completed at ``at``."""
    call = ctx(record(end_ts=None, state="answered"))
    offer, answer = (sdp(*CALLER_RTP),), (sdp(*CALLEE_RTP),)
    call.sdp = SdpHistory(
        exchanges=[
            SdpExchange("caller", 1, 1000.0, offer, ANSWER, answer),
            SdpExchange("caller", 2, at - 0.1, offer, at, answer),
        ]
    )
    return call


def test_silence_counts_from_the_latest_offer_answer_a_resume_or_a_port_move() -> None:
    # the callee was held from 7 s to 30 s: its silence starts at the resume, not at its last packet
    resume = ANSWER + 30
    assert _judge(resume + 7.9, [_callee(7)], _resumed(resume)) is None
    alert = _judge(resume + 8.1, [_callee(7)], _resumed(resume))
    assert alert is not None and alert.details["since_ts"] == resume
