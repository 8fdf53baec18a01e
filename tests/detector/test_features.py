"""Per-call features: one extraction for every path, non-negative, direction from the caller's SDP."""

import math

from callqual.detector.features import FEATURE_VERSION, CallFeatures, extract
from tests.detector.rules.factories import CALLEE_RTP, CALLER_RTP, ctx, record, stream


def test_names_match_vector_and_all_features_are_non_negative() -> None:
    f = extract(ctx())
    assert FEATURE_VERSION >= 1
    assert len(f.vector()) == len(CallFeatures.names())
    assert all(v >= 0.0 and math.isfinite(v) for v in f.vector())


def test_healthy_call_features() -> None:
    f = extract(ctx())
    assert f.answered == 1.0 and f.final_status_class == 2.0
    assert f.post_dial_delay_ms == 800.0 and f.setup_time_ms == 2000.0 and f.duration_s == 30.0
    assert f.fwd_packets == f.rev_packets == 1500.0
    assert f.fwd_mos == f.rev_mos == 4.4
    assert f.codec_pcmu == 1.0 and f.codec_other == 0.0
    # 1000 s after the epoch is 00:16:40 UTC: the angle of 0.28 h
    angle = 2 * math.pi * (1000 / 3600) / 24
    assert math.isclose(f.hour_sin, 1 + math.sin(angle)) and math.isclose(f.hour_cos, 1 + math.cos(angle))


def test_direction_comes_from_the_callers_sdp() -> None:
    streams = [
        stream(packets=1000, expected=1100, lost=100, payload_bytes=160_000, mean_jitter_ms=7.0),
        stream(src=CALLEE_RTP, dst=CALLER_RTP, ssrc=9, packets=100, expected=100, payload_bytes=16_000),
    ]
    f = extract(ctx(streams=streams))
    assert f.fwd_packets == 1000.0 and f.rev_packets == 100.0
    assert math.isclose(f.fwd_loss_ratio, 100 / 1100) and f.rev_loss_ratio == 0.0
    assert f.fwd_jitter_ms == 7.0
    assert math.isclose(f.fwd_byte_share, 160_000 / 176_000)


def test_unanswered_call_without_media() -> None:
    rec = record(
        state="failed",
        final_status=486,
        answer_ts=None,
        setup_time_ms=None,
        duration_s=None,
        answered_media=[],
    )
    f = extract(ctx(rec=rec, streams=[]))
    assert f.answered == 0.0 and f.final_status_class == 4.0 and f.setup_time_ms == 0.0
    assert f.fwd_packets == f.rev_packets == 0.0 and f.fwd_mos == 0.0
    assert f.fwd_byte_share == 0.5
    assert f.codec_pcmu == 1.0  # no stream: the codec comes from the offer's first format


def test_rare_codec_is_other() -> None:
    f = extract(ctx(streams=[stream(codec="iLBC", payload_type=97)]))
    assert f.codec_other == 1.0 and f.codec_pcmu == 0.0
