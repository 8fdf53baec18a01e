"""ZRTP key agreement, then SRTP, on the same media ports: tshark's packet counts, ZRTP counted apart.

A ZRTP-keyed call (RFC 6189) sends Hello, Commit, DHPart, Confirm... on the
RTP ports while media flows, then SRTP (RFC 3711): the RTP header in clear,
payload and auth tag not. tshark tallies every SRTP packet by its header; so
must we, on both collector paths, with and without the SIP that announced the
ports. With SDP, one side sets the P bit, so the octet read as padding count
is auth tag (tshark's RTP heuristic judges such packets one by one, a guess we
do not copy: the heuristic capture has no padded side).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from callqual.collector.config import CollectorConfig
from callqual.pipeline.embedded import analyze_file
from callqual.schemas import AnalysisReport
from tests.collector.callcraft import ZRTP_MESSAGES, CallCapture, sdp, sip, srtp, zrtp
from tests.collector.test_chunk_path import _check as assert_chunk_path_equals_frame_path
from tests.tshark_reference import rtp_streams

pytestmark = pytest.mark.tshark

ALICE, BOB = ("10.0.0.1", 5060), ("10.0.0.2", 5060)
ALICE_MEDIA, BOB_MEDIA = ("10.0.0.1", 4000), ("10.0.0.2", 5000)
PACKETS = 205  # per direction, as in the capture


def _build(path: Path, with_sip: bool) -> tuple[Path, int, int]:
    """The call; returns the path, the ZRTP packet count and the SRTP packets no reader can count."""
    rng = random.Random(6189)
    capture = CallCapture()
    call_id = "zrtp-1@10.0.0.1"
    if with_sip:
        offer = sdp("10.0.0.1", [("audio", 4000, "RTP/SAVP", "0")])
        answer = sdp("10.0.0.2", [("audio", 5000, "RTP/SAVP", "0")])
        capture.add(0.0, ALICE, BOB, sip("INVITE sip:bob@10.0.0.2 SIP/2.0", call_id, "1 INVITE", body=offer))
        capture.add(0.05, BOB, ALICE, sip("SIP/2.0 200 OK", call_id, "1 INVITE", to_tag="b1", body=answer))
        capture.add(0.06, ALICE, BOB, sip("ACK sip:bob@10.0.0.2 SIP/2.0", call_id, "1 ACK", to_tag="b1"))
        capture.add(5.0, ALICE, BOB, sip("BYE sip:bob@10.0.0.2 SIP/2.0", call_id, "2 BYE", to_tag="b1"))
    messages = list(ZRTP_MESSAGES)
    zrtp_count = unreadable = 0
    for src, dst, ssrc, start, padded in [
        (ALICE_MEDIA, BOB_MEDIA, 0x11112222, 0.1, False),
        (BOB_MEDIA, ALICE_MEDIA, 0x33334444, 0.105, with_sip),
    ]:
        zseq = rng.randrange(65536)
        for i in range(PACKETS):
            ts = start + i * 0.02 + rng.uniform(0, 0.004)
            packet = srtp(1000 + i, 160 * i, ssrc, rng, padded=padded)
            unreadable += padded and packet[-1] == 0  # a padding count of 0: not RTP (RFC 3550 5.1)
            capture.add(ts, src, dst, packet)
            if i < 5 * len(messages) and i % 5 == 0:  # the key agreement, interleaved with the media
                capture.add(ts + 0.007, src, dst, zrtp(zseq, ssrc, messages[i // 5], rng))
                zseq += 1
                zrtp_count += 1
    return capture.write(path), zrtp_count, unreadable


def _assert_streams_match_tshark(report: AnalysisReport, path: Path, heuristic: bool) -> None:
    ours = {(s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc): s for s in report.streams}
    reference = rtp_streams(path, heuristic=heuristic)
    assert set(ours) == set(reference)
    for key, want in reference.items():
        got = ours[key]
        assert (got.packets, got.lost) == (want.packets, want.lost), key
        for mine, theirs in [
            (got.max_delta_ms, want.max_delta_ms),
            (got.mean_jitter_ms, want.mean_jitter_ms),
            (got.max_jitter_ms, want.max_jitter_ms),
        ]:
            assert mine == pytest.approx(theirs, rel=0.01, abs=0.01), key


@pytest.mark.parametrize("with_sip", [True, False], ids=["sdp", "heuristic"])
def test_srtp_counts_match_tshark_and_zrtp_is_counted_apart(tmp_path: Path, with_sip: bool) -> None:
    path, zrtp_count, unreadable = _build(tmp_path / "zrtp.pcap", with_sip)
    assert unreadable >= with_sip  # the seed gives the case tshark does not count
    report = analyze_file(path, CollectorConfig(heuristic_rtp=not with_sip))
    _assert_streams_match_tshark(report, path, heuristic=not with_sip)
    assert sum(s.packets for s in report.streams) == 2 * PACKETS - unreadable
    assert report.summary.skipped["rtp.zrtp"] == zrtp_count
    assert report.summary.errors.get("rtp.bad_header", 0) == unreadable
    assert_chunk_path_equals_frame_path(path, not with_sip)
