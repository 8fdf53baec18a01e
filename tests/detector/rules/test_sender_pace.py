"""How a quiet direction's sender paced itself: its own ptime, and whether it can suppress silence."""

import pytest

from callqual.detector.rules.sender_pace import may_suppress_silence, ptime_s, sent_without_pause
from tests.detector.rules.factories import CALLEE_RTP, sdp, stream


@pytest.mark.parametrize("ptime_ms", [10, 20, 30, 40, 60])
def test_ptime_comes_from_the_payload_size_of_a_constant_bitrate_codec(ptime_ms: int) -> None:
    packets = 7000 // ptime_ms
    st = stream(codec="PCMA", packets=packets, payload_bytes=packets * 8 * ptime_ms)
    assert ptime_s(st) == pytest.approx(ptime_ms / 1000)


def test_a_codec_without_a_fixed_bitrate_falls_back_to_20_ms() -> None:
    assert ptime_s(stream(codec="opus", packets=100, payload_bytes=100 * 61)) == 0.020
    assert ptime_s(stream(codec=None, packets=100, payload_bytes=16000)) == 0.020


@pytest.mark.parametrize("ptime_ms", [20, 30, 40])
def test_seven_seconds_at_its_own_ptime_is_without_pause(ptime_ms: int) -> None:
    packets = 7050 // ptime_ms
    st = stream(codec="PCMA", first_ts=100.0, last_ts=100.0 + (packets - 1) * ptime_ms / 1000)
    st = st.model_copy(update={"packets": packets, "payload_bytes": packets * 8 * ptime_ms})
    assert sent_without_pause(st)


def test_talkspurts_are_a_pausing_sender() -> None:
    # 20 ms packets for a fifth of 30 s: what silence suppression looks like
    st = stream(codec="PCMU", first_ts=100.0, last_ts=130.0, packets=300, payload_bytes=300 * 160)
    assert not sent_without_pause(st)


def test_comfort_noise_or_dtx_means_the_sender_may_go_quiet_on_purpose() -> None:
    plain = stream(src=CALLEE_RTP, codec="PCMA", payload_types=[8])
    assert not may_suppress_silence([plain], [sdp("203.0.113.20", 50000, [8, 101])])
    # RFC 3389 comfort noise offered in its own SDP, static or dynamic (wideband CN)
    assert may_suppress_silence([plain], [sdp("203.0.113.20", 50000, [8, 13])])
    wideband_cn = sdp("203.0.113.20", 50000, [8]).model_copy(
        update={"payload_types": [8, 118], "rtpmap": {8: "PCMA/8000", 118: "CN/16000"}}
    )
    assert may_suppress_silence([plain], [wideband_cn])
    # a CN packet in the stream itself
    assert may_suppress_silence([plain.model_copy(update={"payload_types": [8, 13]})], [])


def test_a_dtx_codec_may_pause_only_where_its_dtx_leaves_gaps() -> None:
    g729 = stream(src=CALLEE_RTP, codec="G729", payload_type=18, payload_types=[18], packets=350)
    # all 20-byte packets (two 10-byte frames): it never sent a SID frame, so it never entered DTX
    assert not may_suppress_silence([g729.model_copy(update={"payload_bytes": 7000})], [])
    # one 2-byte SID frame (G.729 Annex B enters a silence with one): it may be pausing
    assert may_suppress_silence([g729.model_copy(update={"payload_bytes": 6982})], [])
    # Opus DTX sends a packet every 400 ms at most: seconds without one are no DTX pause
    opus = stream(src=CALLEE_RTP, codec="opus", payload_type=111, payload_types=[111], payload_bytes=26602)
    assert not may_suppress_silence([opus], [])
    assert may_suppress_silence([opus.model_copy(update={"codec": "G723", "payload_types": [4]})], [])
