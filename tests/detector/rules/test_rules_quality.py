"""Per-call quality rules: each fires just past its threshold and stays quiet at it."""

import pytest

from callqual.detector.rules import RuleSettings
from callqual.detector.rules.codec_mismatch import CodecMismatch
from callqual.detector.rules.dropped_call import DroppedCall, parse_reason
from callqual.detector.rules.high_jitter import HighJitter
from callqual.detector.rules.long_post_dial_delay import LongPostDialDelay
from callqual.detector.rules.low_mos import LowMos
from callqual.detector.rules.no_media import NoMedia
from callqual.detector.rules.one_way_audio import OneWayAudio
from callqual.detector.rules.packet_loss import PacketLoss
from callqual.detector.rules.sdp_private_address import SdpPrivateAddress
from callqual.detector.rules.sip_retransmissions import SipRetransmissions
from tests.detector.rules.factories import (
    CALLEE_RTP,
    CALLER_RTP,
    both_streams,
    call_messages,
    ctx,
    record,
    request,
    response,
    sdp,
    stream,
)

S = RuleSettings()


def test_healthy_call_raises_nothing() -> None:
    c = ctx()
    for rule in (
        LowMos(S),
        PacketLoss(S),
        HighJitter(S),
        OneWayAudio(S),
        NoMedia(S),
        DroppedCall(S),
        LongPostDialDelay(S),
        SipRetransmissions(S),
        CodecMismatch(S),
        SdpPrivateAddress(S),
    ):
        assert rule.evaluate(c) == [], rule.id


@pytest.mark.parametrize(
    ("mos", "severity"), [(3.6, None), (3.59, "warning"), (3.1, "warning"), (3.09, "critical")]
)
def test_low_mos_boundaries(mos: float, severity: str | None) -> None:
    c = ctx(streams=[stream(mos=4.3), stream(src=CALLEE_RTP, dst=CALLER_RTP, mos=mos)])
    alerts = LowMos(S).evaluate(c)
    assert [a.severity for a in alerts] == ([severity] if severity else [])
    if alerts:
        a = alerts[0]
        assert a.rule == "low_mos" and a.call_id == "call-1" and a.details["min_mos"] == mos
        assert a.evidence and a.evidence[0].frame == 1  # the INVITE with SDP


def test_low_mos_ignores_short_and_unreliable_streams() -> None:
    c = ctx(streams=[stream(mos=2.0, packets=49), stream(mos=2.0, unreliable=True)])
    assert LowMos(S).evaluate(c) == []


@pytest.mark.parametrize(
    ("lost", "severity"), [(20, None), (21, "warning"), (50, "warning"), (51, "critical")]
)
def test_packet_loss_boundaries(lost: int, severity: str | None) -> None:
    c = ctx(streams=[stream(expected=1000, packets=1000 - lost, lost=lost)])
    assert [a.severity for a in PacketLoss(S).evaluate(c)] == ([severity] if severity else [])


def test_packet_loss_uses_rtcp_reported_loss() -> None:
    c = ctx(streams=[stream(rtcp_fraction_lost=0.03)])
    (a,) = PacketLoss(S).evaluate(c)
    assert a.details["loss_ratio"] == 0.03


@pytest.mark.parametrize(
    ("mean", "peak", "fires"),
    [(30.0, 60.0, False), (30.1, 40.0, True), (10.0, 60.1, True), (29.9, 59.9, False)],
)
def test_high_jitter_boundaries(mean: float, peak: float, fires: bool) -> None:
    c = ctx(streams=[stream(mean_jitter_ms=mean, max_jitter_ms=peak)])
    assert bool(HighJitter(S).evaluate(c)) is fires


def test_one_way_audio_fires_when_one_direction_is_empty() -> None:
    (a,) = OneWayAudio(S).evaluate(ctx(streams=[stream()]))
    assert a.severity == "critical"
    assert a.details["flowing_direction"] == "caller_to_callee"
    assert a.details["packets_minor"] == 0


def test_one_way_audio_ratio_boundary() -> None:
    # 5 % of 1500 = 75: at 75 packets the weak direction is accepted, at 74 it is not.
    ok = [stream(), stream(src=CALLEE_RTP, dst=CALLER_RTP, packets=75, expected=75)]
    bad = [stream(), stream(src=CALLEE_RTP, dst=CALLER_RTP, packets=74, expected=74)]
    assert OneWayAudio(S).evaluate(ctx(streams=ok)) == []
    (a,) = OneWayAudio(S).evaluate(ctx(streams=bad))
    assert a.severity == "warning"


def test_one_way_audio_skips_hold_short_calls_and_unanswered() -> None:
    rule = OneWayAudio(S)
    hold = record(answered_media=[sdp(*CALLEE_RTP, direction="recvonly")])
    assert rule.evaluate(ctx(rec=hold, streams=[stream()])) == []
    short = record(answer_ts=1002.0, end_ts=1004.0, duration_s=2.0)
    assert rule.evaluate(ctx(rec=short, streams=[stream()])) == []
    failed = record(state="failed", final_status=486, answer_ts=None, end_ts=1003.0, duration_s=None)
    assert rule.evaluate(ctx(rec=failed, streams=[stream()])) == []


def test_one_way_audio_with_nat_uses_symmetric_source() -> None:
    # The callee's stream arrives at a NAT-rewritten destination but from its SDP address.
    streams = [stream(dst=("192.0.2.99", 7000)), stream(src=CALLEE_RTP, dst=("192.0.2.1", 6000), packets=10)]
    (a,) = OneWayAudio(S).evaluate(ctx(streams=streams))
    assert a.details["packets_minor"] == 10


def test_no_media_boundaries() -> None:
    rule = NoMedia(S)
    (a,) = rule.evaluate(ctx(streams=[]))
    assert a.rule == "no_media" and a.severity == "critical"
    two_s = record(end_ts=1004.0, duration_s=2.0)
    assert rule.evaluate(ctx(rec=two_s, streams=[])) == []
    longer = record(end_ts=1004.01, duration_s=2.01)
    assert len(rule.evaluate(ctx(rec=longer, streams=[]))) == 1
    assert rule.evaluate(ctx(streams=[stream(packets=1, expected=1)])) == []
    inactive = record(answered_media=[sdp(*CALLEE_RTP, direction="inactive")])
    assert rule.evaluate(ctx(rec=inactive, streams=[])) == []


def test_dropped_call_without_bye() -> None:
    rec = record(state="answered", end_ts=None, duration_s=None)
    timed_out = ctx(rec=rec)
    timed_out.closed_by = "timeout"
    (a,) = DroppedCall(S).evaluate(timed_out)
    assert a.details["reason"] == "no_bye"


@pytest.mark.parametrize(("silent_s", "fires"), [(29.0, False), (31.0, True)])
def test_call_open_at_end_of_capture_is_dropped_only_after_silence(silent_s: float, fires: bool) -> None:
    """A call still up when the capture ended was not dropped, unless it had gone silent long before."""
    open_call = ctx(rec=record(state="answered", end_ts=None, duration_s=None))
    open_call.closed_by = "end_of_input"
    open_call.last_activity_ts = 1000.0
    open_call.closed_ts = 1000.0 + silent_s
    assert bool(DroppedCall(S).evaluate(open_call)) is fires


@pytest.mark.parametrize(
    ("reason", "fires"),
    [
        ("Q.850;cause=16", False),
        ('Q.850;cause=31;text="Normal, unspecified"', False),
        ("SIP;cause=200", False),
        ("Q.850;cause=38", True),
        ("SIP;cause=408", True),
        ('Q.850 ; cause = 41 ; text="Temporary failure"', True),
    ],
)
def test_dropped_call_reason_header(reason: str, fires: bool) -> None:
    msgs = call_messages()
    msgs[5] = request("BYE", frame=6, ts=1032.0, to_tag="t1", reason_header=reason)
    alerts = DroppedCall(S).evaluate(ctx(messages=msgs))
    assert bool(alerts) is fires
    if fires:
        assert alerts[0].details["reason"] == "abnormal_cause"
        assert alerts[0].evidence[0].frame == 6
        assert alerts[0].evidence[0].headers["reason"] == reason


def test_parse_reason_multiple_values() -> None:
    assert parse_reason('SIP;cause=200;text="x", Q.850;cause=16') == [("SIP", 200), ("Q.850", 16)]


def test_long_post_dial_delay_boundary() -> None:
    rule = LongPostDialDelay(S)
    assert rule.evaluate(ctx(rec=record(post_dial_delay_ms=5000.0))) == []
    (a,) = rule.evaluate(ctx(rec=record(post_dial_delay_ms=5000.1)))
    assert [e.frame for e in a.evidence] == [1, 3]  # INVITE and 180


def test_sip_retransmissions_boundary() -> None:
    rule = SipRetransmissions(S)
    msgs = call_messages()
    msgs.insert(1, request("INVITE", frame=8, ts=1000.5, sdp=[sdp(*CALLER_RTP)], user_agent="PhoneA"))
    assert rule.evaluate(ctx(rec=record(retransmissions=1), messages=msgs)) == []
    (a,) = rule.evaluate(ctx(rec=record(retransmissions=2), messages=msgs))
    assert a.details["retransmissions"] == 2
    assert [e.frame for e in a.evidence] == [8]


def test_codec_mismatch() -> None:
    rule = CodecMismatch(S)
    # PCMA (8) was never offered nor answered.
    (a,) = rule.evaluate(ctx(streams=[stream(payload_type=8, payload_types=[8])]))
    assert a.details["unexpected_payload_types"] == "8"
    # telephone-event (negotiated) and CN (ignored) are fine.
    assert rule.evaluate(ctx(streams=[stream(payload_types=[0, 101, 13])])) == []


def test_codec_mismatch_dynamic_renumbering_is_not_a_mismatch() -> None:
    rec = record(offered_media=[sdp(*CALLER_RTP, pts=[96])], answered_media=[sdp(*CALLEE_RTP, pts=[96])])
    assert (
        CodecMismatch(S).evaluate(ctx(rec=rec, streams=[stream(payload_type=96, payload_types=[96])])) == []
    )
    # Offer PCMU+PCMA, answer only PCMU: PCMA in RTP is a mismatch.
    rec2 = record(offered_media=[sdp(*CALLER_RTP, pts=[0, 8])], answered_media=[sdp(*CALLEE_RTP, pts=[0])])
    assert len(CodecMismatch(S).evaluate(ctx(rec=rec2, streams=[stream(payload_types=[0, 8])]))) == 1


@pytest.mark.parametrize(
    ("c_ip", "fires"),
    [
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("172.32.0.1", False),
        ("192.168.1.10", True),
        ("100.64.0.1", True),
        ("100.127.255.255", True),
        ("100.128.0.1", False),
        ("203.0.113.5", False),
    ],
)
def test_sdp_private_address(c_ip: str, fires: bool) -> None:
    msgs = call_messages()
    msgs[0] = request("INVITE", frame=1, ts=1000.0, src=("8.8.4.4", 5060), sdp=[sdp(c_ip, 40000)])
    alerts = SdpPrivateAddress(S).evaluate(ctx(messages=msgs))
    assert bool(alerts) is fires
    if fires:
        assert alerts[0].details["sdp_addresses"] == c_ip
        assert alerts[0].evidence[0].frame == 1


def test_sdp_private_address_from_private_signalling_is_fine() -> None:
    msgs = [request("INVITE", frame=1, src=("192.168.1.2", 5060), sdp=[sdp("192.168.1.2", 40000)])]
    assert SdpPrivateAddress(S).evaluate(ctx(messages=msgs)) == []


def test_call_rule_alert_ids_are_deterministic() -> None:
    a1 = LowMos(S).evaluate(ctx(streams=[stream(mos=2.5)]))[0]
    a2 = LowMos(S).evaluate(ctx(streams=[stream(mos=2.0)]))[0]
    other = LowMos(S).evaluate(ctx(rec=record(call_id="call-2"), streams=[stream(mos=2.5)]))[0]
    assert a1.alert_id == a2.alert_id  # same call, same rule: one identity
    assert a1.alert_id != other.alert_id
    assert a1.alert_id != PacketLoss(S).evaluate(ctx(streams=[stream(lost=100, expected=1500)]))[0].alert_id


def test_response_helper_roundtrip() -> None:
    assert response(486).status_code == 486
    assert both_streams()[1].src_port == CALLEE_RTP[1]
