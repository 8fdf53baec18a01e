"""The call table's timers: when an unanswered INVITE is given up on."""

from callqual.detector.call_assembler import CallAssembler
from callqual.detector.call_context import CallContext
from tests.detector.rules.factories import request, response, sdp

T0 = 1_000.0


def _expire_at(assembler: CallAssembler, times: list[float]) -> dict[float, list[CallContext]]:
    return {t: assembler.expire(t) for t in times}


def test_an_invite_without_any_response_is_given_up_after_timer_b_twice() -> None:
    assembler = CallAssembler()
    assembler.on_sip(request("INVITE", ts=T0, sdp=[sdp("192.0.2.10", 40000)]))
    closed = _expire_at(assembler, [T0 + 63.0, T0 + 64.5])
    assert closed[T0 + 63.0] == []
    (call,) = closed[T0 + 64.5]
    assert call.record.answer_ts is None and call.record.final_status is None


def test_a_phone_ringing_for_two_minutes_is_one_call_that_is_then_answered() -> None:
    """Timer B stops at a provisional response: a long ring is not a timed-out INVITE."""
    assembler = CallAssembler()
    assembler.on_sip(request("INVITE", ts=T0, sdp=[sdp("192.0.2.10", 40000)]))
    assembler.on_sip(response(100, "INVITE", ts=T0 + 0.05))
    assembler.on_sip(response(180, "INVITE", ts=T0 + 0.5))
    assert _expire_at(assembler, [T0 + 60.0, T0 + 120.0]) == {T0 + 60.0: [], T0 + 120.0: []}
    assembler.on_sip(response(200, "INVITE", ts=T0 + 125.0, sdp=[sdp("198.51.100.20", 50000)]))
    assert len(assembler) == 1
    (call,) = assembler.drain(T0 + 130.0)
    assert call.record.answer_ts == T0 + 125.0
    assert call.record.post_dial_delay_ms is not None and call.record.post_dial_delay_ms < 1_000


def test_a_ringing_call_nobody_answers_is_given_up_after_timer_c() -> None:
    assembler = CallAssembler()
    assembler.on_sip(request("INVITE", ts=T0, sdp=[sdp("192.0.2.10", 40000)]))
    assembler.on_sip(response(180, "INVITE", ts=T0 + 0.5))
    assert assembler.expire(T0 + 180.0) == []
    (call,) = assembler.expire(T0 + 201.0)
    assert call.record.answer_ts is None
