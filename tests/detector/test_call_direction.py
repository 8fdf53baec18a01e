"""A call's two parties keep their roles through re-INVITEs from either side (issue 11, items 1 and 4).

Calls are assembled from SIP events by the real CallAssembler; the streams
are StreamRecords as the collector reports them.
"""

from typing import Any

from callqual.detector.call_assembler import CallAssembler
from callqual.detector.call_context import CallContext
from callqual.detector.features import extract
from callqual.detector.rules import RuleSettings
from callqual.detector.rules.codec_mismatch import CodecMismatch
from callqual.detector.rules.media import stream_direction
from callqual.detector.rules.one_way_audio import OneWayAudio
from callqual.schemas import SipMessageEvent, StreamRecord
from tests.detector.rules.factories import (
    CALLEE,
    CALLEE_RTP,
    CALLER,
    CALLER_RTP,
    request,
    response,
    sdp,
    stream,
)

S = RuleSettings()
CALLER_TAG, CALLEE_TAG = "a1", "b2"
#: where the callee moves its media in a re-INVITE
CALLEE_RTP_2 = (CALLEE_RTP[0], 50010)


def by_caller(method: str, cseq: int, ts: float, **kw: Any) -> SipMessageEvent:
    return request(method, ts=ts, cseq_num=cseq, from_tag=CALLER_TAG, to_tag=CALLEE_TAG, **kw)


def by_callee(method: str, cseq: int, ts: float, **kw: Any) -> SipMessageEvent:
    """An in-dialog request from the callee: From and To swap, and so do the tags."""
    return request(
        method,
        user="alice",
        ts=ts,
        cseq_num=cseq,
        src=CALLEE,
        dst=CALLER,
        from_uri="sip:bob@example.com",
        from_tag=CALLEE_TAG,
        to_tag=CALLER_TAG,
        **kw,
    )


def answer_from_caller(cseq: int, ts: float, method: str = "INVITE", **kw: Any) -> SipMessageEvent:
    return response(
        200,
        method,
        ts=ts,
        cseq_num=cseq,
        src=CALLER,
        dst=CALLEE,
        from_uri="sip:bob@example.com",
        from_tag=CALLEE_TAG,
        to_tag=CALLER_TAG,
        **kw,
    )


def answer_from_callee(cseq: int, ts: float, **kw: Any) -> SipMessageEvent:
    return response(200, ts=ts, cseq_num=cseq, from_tag=CALLER_TAG, to_tag=CALLEE_TAG, **kw)


def setup(pts: list[int] | None = None) -> list[SipMessageEvent]:
    return [
        request("INVITE", ts=1000.0, cseq_num=1, from_tag=CALLER_TAG, sdp=[sdp(*CALLER_RTP, pts=pts)]),
        response(180, ts=1000.5, cseq_num=1, from_tag=CALLER_TAG, to_tag=CALLEE_TAG),
        answer_from_callee(1, 1002.0, sdp=[sdp(*CALLEE_RTP, pts=pts)]),
        by_caller("ACK", 1, 1002.1),
    ]


def assemble(messages: list[SipMessageEvent], streams: list[StreamRecord]) -> CallContext:
    assembler = CallAssembler()
    for m in messages:
        assembler.on_sip(m)
    for st in streams:
        assert assembler.on_stream(st)
    (ctx,) = assembler.drain(2000.0)
    return ctx


def two_way(
    caller_rtp: tuple[str, int], callee_rtp: tuple[str, int], t0: float, t1: float
) -> list[StreamRecord]:
    n = round((t1 - t0) * 50)
    return [
        stream(src=caller_rtp, dst=callee_rtp, ssrc=0x1111, first_ts=t0, last_ts=t1, packets=n, expected=n),
        stream(src=callee_rtp, dst=caller_rtp, ssrc=0x2222, first_ts=t0, last_ts=t1, packets=n, expected=n),
    ]


def test_session_refreshes_alternating_between_the_parties_keep_direction() -> None:
    """Session-Expires refreshes, every 10 s, by the callee (refresher=uas), then the caller, ..."""
    messages = setup()
    for i, ts in enumerate((1010.0, 1018.0, 1026.0, 1034.0, 1042.0)):  # the callee refreshes last
        cseq = 2 + i
        if i % 2 == 0:
            messages += [
                by_callee("INVITE", cseq, ts, sdp=[sdp(*CALLEE_RTP)]),
                answer_from_caller(cseq, ts + 0.01, sdp=[sdp(*CALLER_RTP)]),
                by_callee("ACK", cseq, ts + 0.02),
            ]
        else:
            messages += [
                by_caller("INVITE", cseq, ts, sdp=[sdp(*CALLER_RTP)]),
                answer_from_callee(cseq, ts + 0.01, sdp=[sdp(*CALLEE_RTP)]),
                by_caller("ACK", cseq, ts + 0.02),
            ]
    messages.append(by_caller("BYE", 10, 1052.0))
    streams = two_way(CALLER_RTP, CALLEE_RTP, 1002.2, 1052.0)
    ctx = assemble(messages, streams)
    assert ctx.record.offered_media[0].port == CALLER_RTP[1]
    assert ctx.record.answered_media[0].port == CALLEE_RTP[1]
    assert [stream_direction(ctx, s) for s in ctx.streams] == ["caller_to_callee", "callee_to_caller"]
    assert OneWayAudio(S).evaluate(ctx) == []
    features = extract(ctx)
    assert features.fwd_packets == features.rev_packets == 2490
    assert features.rev_mos > 4


def test_hold_and_resume_by_the_callee_is_not_one_way_audio() -> None:
    messages = [
        *setup(),
        by_callee("INVITE", 2, 1010.0, sdp=[sdp(*CALLEE_RTP, direction="sendonly")]),
        answer_from_caller(2, 1010.01, sdp=[sdp(*CALLER_RTP, direction="recvonly")]),
        by_callee("ACK", 2, 1010.02),
        by_callee("INVITE", 3, 1020.0, sdp=[sdp(*CALLEE_RTP)]),
        answer_from_caller(3, 1020.01, sdp=[sdp(*CALLER_RTP)]),
        by_callee("ACK", 3, 1020.02),
        by_caller("BYE", 2, 1032.0),
    ]
    # On hold the caller is silent, the callee plays music: both ways over the call.
    streams = [
        stream(
            src=CALLER_RTP, dst=CALLEE_RTP, ssrc=1, first_ts=1002.2, last_ts=1032, packets=1000, expected=1500
        ),
        stream(
            src=CALLEE_RTP, dst=CALLER_RTP, ssrc=2, first_ts=1002.2, last_ts=1032, packets=1500, expected=1500
        ),
    ]
    ctx = assemble(messages, streams)
    assert [stream_direction(ctx, s) for s in ctx.streams] == ["caller_to_callee", "callee_to_caller"]
    assert OneWayAudio(S).evaluate(ctx) == []
    held = assemble([*messages[:-4], by_caller("BYE", 2, 1032.0)], streams)
    assert OneWayAudio(S).evaluate(held) == [], "a call that ends on hold says one-way in its SDP"


def test_reinvite_moving_media_to_new_ports_keeps_both_addresses_per_party() -> None:
    messages = [
        *setup(),
        by_callee("INVITE", 2, 1015.0, sdp=[sdp(*CALLEE_RTP_2)]),
        answer_from_caller(2, 1015.01, sdp=[sdp(*CALLER_RTP)]),
        by_callee("ACK", 2, 1015.02),
        by_caller("BYE", 2, 1032.0),
    ]
    streams = [
        *two_way(CALLER_RTP, CALLEE_RTP, 1002.2, 1015.0),
        *two_way(CALLER_RTP, CALLEE_RTP_2, 1015.0, 1032.0),
    ]
    ctx = assemble(messages, streams)
    directions = [stream_direction(ctx, s) for s in ctx.streams]
    assert directions.count("caller_to_callee") == directions.count("callee_to_caller") == 2
    assert OneWayAudio(S).evaluate(ctx) == []
    features = extract(ctx)
    assert features.fwd_packets == features.rev_packets == 640 + 850


def test_one_way_audio_still_fires_after_a_callee_reinvite() -> None:
    messages = [
        *setup(),
        by_callee("INVITE", 2, 1010.0, sdp=[sdp(*CALLEE_RTP)]),
        answer_from_caller(2, 1010.01, sdp=[sdp(*CALLER_RTP)]),
        by_caller("BYE", 2, 1032.0),
    ]
    only_caller = [stream(src=CALLER_RTP, dst=CALLEE_RTP, first_ts=1002.2, last_ts=1032.0)]
    (alert,) = OneWayAudio(S).evaluate(assemble(messages, only_caller))
    assert alert.details["flowing_direction"] == "caller_to_callee"
    assert alert.details["packets_minor"] == 0


def test_codec_is_judged_against_what_was_negotiated_while_the_stream_ran() -> None:
    """PCMU until a re-INVITE renegotiates opus; PCMU before is fine, PCMU after is a mismatch."""
    messages = [
        *setup(pts=[0]),
        by_caller("INVITE", 2, 1015.0, sdp=[sdp(*CALLER_RTP, pts=[96])]),
        answer_from_callee(2, 1015.01, sdp=[sdp(*CALLEE_RTP, pts=[96])]),
        by_caller("ACK", 2, 1015.02),
        by_caller("BYE", 3, 1032.0),
    ]
    pcmu = two_way(CALLER_RTP, CALLEE_RTP, 1002.2, 1015.0)
    opus = [
        s.model_copy(update={"payload_type": 96, "payload_types": [96], "ssrc": s.ssrc + 1}) for s in pcmu
    ]
    later = [s.model_copy(update={"first_ts": 1015.1, "last_ts": 1032.0}) for s in opus]
    assert CodecMismatch(S).evaluate(assemble(messages, [*pcmu, *later])) == []
    pcmu_late = [s.model_copy(update={"first_ts": 1016.0, "last_ts": 1032.0}) for s in pcmu]
    (alert,) = CodecMismatch(S).evaluate(assemble(messages, pcmu_late))
    assert alert.details["unexpected_payload_types"] == "0"
    assert alert.details["negotiated_payload_types"] == "96"
    opus_early = [s.model_copy(update={"last_ts": 1010.0}) for s in opus]
    assert len(CodecMismatch(S).evaluate(assemble(messages, opus_early))) == 1


def test_a_rejected_reoffer_never_takes_effect() -> None:
    messages = [
        *setup(pts=[0]),
        by_caller("INVITE", 2, 1015.0, sdp=[sdp(*CALLER_RTP, pts=[96])]),
        response(488, ts=1015.01, cseq_num=2, from_tag=CALLER_TAG, to_tag=CALLEE_TAG),
        by_caller("BYE", 3, 1032.0),
    ]
    opus = [
        s.model_copy(update={"payload_type": 96, "payload_types": [96]})
        for s in two_way(CALLER_RTP, CALLEE_RTP, 1016, 1032)
    ]
    ctx = assemble(messages, opus)
    assert ctx.record.state == "completed"
    assert len(CodecMismatch(S).evaluate(ctx)) == 1


def long_hold_by_the_callee() -> list[SipMessageEvent]:
    """A 100 s call the callee holds from 4 s to 98 s (music on hold; the caller, recvonly, is silent)."""
    return [
        *setup(),
        by_callee("INVITE", 2, 1006.0, sdp=[sdp(*CALLEE_RTP, direction="sendonly")]),
        answer_from_caller(2, 1006.01, sdp=[sdp(*CALLER_RTP, direction="recvonly")]),
        by_callee("INVITE", 3, 1100.0, sdp=[sdp(*CALLEE_RTP)]),
        answer_from_caller(3, 1100.01, sdp=[sdp(*CALLER_RTP)]),
        by_caller("BYE", 2, 1102.0),
    ]


def test_a_long_hold_by_the_callee_is_weighed_by_the_time_each_side_was_meant_to_send() -> None:
    music = stream(
        src=CALLEE_RTP, dst=CALLER_RTP, ssrc=2, first_ts=1002, last_ts=1102, packets=5000, expected=5000
    )
    talk = stream(
        src=CALLER_RTP, dst=CALLEE_RTP, ssrc=1, first_ts=1002, last_ts=1102, packets=200, expected=5000
    )
    ctx = assemble(long_hold_by_the_callee(), [talk, music])
    # 4 % of the callee's packets, but the caller was meant to talk for 4 s of the 100
    assert talk.packets < S.one_way_min_ratio * music.packets
    assert OneWayAudio(S).evaluate(ctx) == []
    silent = assemble(long_hold_by_the_callee(), [music])
    (alert,) = OneWayAudio(S).evaluate(silent)
    assert alert.severity == "critical" and alert.details["flowing_direction"] == "callee_to_caller"


def test_a_callee_reinvite_without_sdp_takes_the_callers_offer_in_the_200_and_its_answer_in_the_ack() -> None:
    """Each side numbers its own CSeq: the callee's CSeq 1 is not the caller's initial INVITE."""
    messages = [
        *setup(),
        by_callee("INVITE", 1, 1010.0),
        answer_from_caller(1, 1010.01, sdp=[sdp(*CALLER_RTP, direction="sendonly")]),
        by_callee("ACK", 1, 1010.02, sdp=[sdp(*CALLEE_RTP_2, direction="recvonly")]),
        by_caller("BYE", 2, 1032.0),
    ]
    ctx = assemble(messages, [])
    last = ctx.sdp.exchanges[-1]
    assert (last.offerer, last.cseq) == ("caller", 1)
    assert [m.direction for m in last.offer] == ["sendonly"]
    assert [m.port for m in last.answer] == [CALLEE_RTP_2[1]]
    assert ctx.record.answered_media[0].port == CALLEE_RTP_2[1]


def test_the_callers_refusal_of_a_callee_reoffer_does_not_cancel_the_callers_own_offer() -> None:
    messages = [
        *setup(),
        by_caller("INVITE", 2, 1010.0, sdp=[sdp(*CALLER_RTP, pts=[8])]),
        # glare: the callee's own re-INVITE (its CSeq 2) is refused 491 by the caller
        answer_from_caller(2, 1010.005).model_copy(
            update={"status_code": 491, "first_line": "SIP/2.0 491 X"}
        ),
        answer_from_callee(2, 1010.01, sdp=[sdp(*CALLEE_RTP, pts=[8])]),
    ]
    ctx = assemble(messages, [])
    assert [[m.payload_types for m in ex.answer] for ex in ctx.sdp.exchanges] == [[[0, 101]], [[8]]]


def test_both_legs_through_a_transcoding_media_relay() -> None:
    """The span sees caller -> proxy -> callee; the relay rewrites SDP on the second leg (PCMU <-> G.729)."""
    proxy = ("192.0.2.1", 5060)
    relay_a, relay_b = ("192.0.2.100", 30000), ("192.0.2.100", 30002)
    pcmu, g729 = [0], [18]
    invite = request(
        "INVITE", ts=1000.0, cseq_num=1, from_tag=CALLER_TAG, dst=proxy, sdp=[sdp(*CALLER_RTP, pts=pcmu)]
    )
    ok: dict[str, Any] = {"cseq_num": 1, "from_tag": CALLER_TAG, "to_tag": CALLEE_TAG}
    messages = [
        invite,
        invite.model_copy(update={"src_ip": proxy[0], "dst_ip": CALLEE[0], "sdp": [sdp(*relay_b, pts=g729)]}),
        response(200, ts=1002.0, src=CALLEE, dst=proxy, sdp=[sdp(*CALLEE_RTP, pts=g729)], **ok),
        response(200, ts=1002.001, src=proxy, dst=CALLER, sdp=[sdp(*relay_a, pts=pcmu)], **ok),
        by_caller("ACK", 1, 1002.1),
        by_caller("BYE", 2, 1032.0),
    ]
    a_side = two_way(CALLER_RTP, relay_a, 1002.2, 1032.0)
    b_side = [
        s.model_copy(update={"payload_type": 18, "payload_types": [18], "codec": "G729", "ssrc": s.ssrc + 7})
        for s in two_way(relay_b, CALLEE_RTP, 1002.2, 1032.0)
    ]
    ctx = assemble(messages, [*a_side, *b_side])
    directions = {(s.src_port, s.dst_port): stream_direction(ctx, s) for s in ctx.streams}
    assert directions == {
        (CALLER_RTP[1], relay_a[1]): "caller_to_callee",
        (relay_a[1], CALLER_RTP[1]): "callee_to_caller",
        (relay_b[1], CALLEE_RTP[1]): "caller_to_callee",
        (CALLEE_RTP[1], relay_b[1]): "callee_to_caller",
    }
    assert CodecMismatch(S).evaluate(ctx) == []
    assert OneWayAudio(S).evaluate(ctx) == []
