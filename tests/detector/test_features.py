"""Per-call features: one extraction for every path, None where not applicable, direction from SDP."""

import math

from callqual.detector.features import SCALES, CallFeatures, extract, user_agent_product
from tests.detector.rules.factories import CALLEE_RTP, CALLER_RTP, ctx, record, stream


def test_every_numeric_feature_has_a_scale_and_the_vector_follows_the_names() -> None:
    f = extract(ctx())
    assert CallFeatures.names() == list(SCALES)
    assert CallFeatures.category_names() == ["codec", "user_agent"]
    assert len(f.vector()) == len(CallFeatures.names())
    assert all(math.isfinite(v) for v in f.vector())


def test_healthy_call_features() -> None:
    f = extract(ctx(rec=record(user_agent="Yealink SIP-T46U 108.86.0.20")))
    assert f.answered == 1.0
    assert f.post_dial_delay_ms == 800.0 and f.setup_time_ms == 2000.0 and f.duration_s == 30.0
    assert f.fwd_packets == f.rev_packets == 1500.0
    # 1500 packets over the streams' 30 s: 20 ms packetisation
    assert f.fwd_packet_rate == f.rev_packet_rate == 50.0
    assert f.direction_balance == 1.0 and f.mid_dialog_requests == 0.0
    assert f.fwd_mos == f.rev_mos == 4.4
    assert f.max_sip_bytes == 500.0
    assert f.codec == "pcmu" and f.user_agent == "yealink"
    # 1000 s after the epoch is 00:16:40 UTC
    assert math.isclose(f.hour, 1000 / 3600)


def test_direction_comes_from_the_sdp_and_balance_compares_the_two() -> None:
    streams = [
        stream(packets=1000, expected=1100, lost=100, payload_bytes=160_000, mean_jitter_ms=7.0),
        stream(src=CALLEE_RTP, dst=CALLER_RTP, ssrc=9, packets=100, expected=100, payload_bytes=16_000),
    ]
    f = extract(ctx(streams=streams))
    assert f.fwd_packets == 1000.0 and f.rev_packets == 100.0
    assert f.fwd_loss_ratio is not None and math.isclose(f.fwd_loss_ratio, 100 / 1100)
    assert f.rev_loss_ratio == 0.0
    assert f.fwd_jitter_ms == 7.0
    assert f.direction_balance == 0.1
    # the quiet side sent 100 packets over the same 30 s: talkspurts, not 20 ms all along
    assert f.rev_packet_rate is not None and math.isclose(f.rev_packet_rate, 100 / 30)


def test_unanswered_call_has_no_media_features() -> None:
    rec = record(
        state="failed",
        final_status=486,
        answer_ts=None,
        setup_time_ms=None,
        duration_s=None,
        answered_media=[],
    )
    f = extract(ctx(rec=rec, streams=[]))
    assert f.answered == 0.0
    assert f.setup_time_ms is None and f.duration_s is None
    assert f.fwd_packets is None and f.fwd_mos is None and f.direction_balance is None
    assert math.isnan(f.vector()[CallFeatures.names().index("fwd_packet_rate")])
    assert f.codec == "pcmu"  # no stream: the codec comes from the offer's first format


def test_mid_dialog_requests_count_re_invites_and_others_but_not_auth_retries() -> None:
    rec = record(
        requests={"INVITE": 4, "ACK": 4, "BYE": 1, "UPDATE": 2, "INFO": 1},
        responses={"407": 1, "200": 4},
    )
    # 2 UPDATE + 1 INFO + (4 INVITEs - the first - one answered 407 challenge)
    assert extract(ctx(rec=rec)).mid_dialog_requests == 5.0


def test_user_agent_product_drops_versions() -> None:
    assert user_agent_product("Polycom/6.4.3 VVX-450") == "polycom"
    assert user_agent_product("friendly-scanner") == "friendly-scanner"
    assert user_agent_product("  2.0 Zoiper rv2") == "zoiper"
    assert user_agent_product(None) == user_agent_product("1.0") == ""


def test_rare_codec_keeps_its_name() -> None:
    f = extract(ctx(streams=[stream(codec="iLBC", payload_type=97)]))
    assert f.codec == "ilbc"
