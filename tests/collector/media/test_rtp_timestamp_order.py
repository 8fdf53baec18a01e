"""RTP timestamps that jump back before the first packet's, or 2^31 ahead: tshark's numbers, both paths.

tap-rtp-analysis.c analyses a packet only if its extended timestamp lies in
[first, first + 2^31) ("in_time_sequence"); others are counted and flagged but
move neither delta nor jitter. A corrupted timestamp used to give jitters of
millions of milliseconds. Each case is a stream compared with
``tshark -z rtp,streams`` (heuristics on, as there is no SDP).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callqual.collector.config import CollectorConfig
from callqual.pipeline.embedded import analyze_file
from tests.collector.callcraft import CallCapture, rtp
from tests.collector.test_chunk_path import _check as assert_chunk_path_equals_frame_path
from tests.tshark_reference import rtp_streams

pytestmark = pytest.mark.tshark

CASES = {
    "back-but-after-the-first": [0, 160, 320, 200, 480, 640, 800],
    "before-the-first": [1000, 1160, 1320, 900, 1480, 1640, 1800],
    "wrap": [4294967000, 4294967160, 24, 184, 344, 504],
    "jump-2^31-ahead-and-back": [1000, 1160, 1320, 1480, 0x80000000 + 2000, 1640, 1800, 1960],
    "creeping-past-2^31": [1000, 1000 + 0x60000000, 1000 + 0xC0000000, 1000 + 0xC0000000 + 160],
    "unwrapped-below-the-first": [1000, 1160, 1320, 1480, 1000 + 0x90000000, 1000 + 0x90000160, 1640, 1800],
    # long enough for the chunk path's vectorised drain, which must spot the one corrupt timestamp
    "one-corrupt-in-3000": [160 * i + (0x80000000 if i == 1500 else 0) for i in range(3000)],
}


def _stream(path: Path, stamps: list[int]) -> Path:
    capture = CallCapture()
    for i, stamp in enumerate(stamps):
        ts = 1.0 + 0.02 * i + (0.003 if i % 2 else 0.0)
        capture.add(ts, ("10.0.0.1", 4000), ("10.0.0.2", 5000), rtp(100 + i, stamp, 0x1234, b"\xff" * 160))
    return capture.write(path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_timestamps_out_of_order_match_tshark(tmp_path: Path, name: str) -> None:
    path = _stream(tmp_path / f"{name}.pcap", CASES[name])
    ((key, want),) = rtp_streams(path, heuristic=True).items()
    (got,) = analyze_file(path, CollectorConfig(heuristic_rtp=True)).streams
    assert (got.src_ip, got.src_port, got.dst_ip, got.dst_port, got.ssrc) == key
    assert (got.packets, got.lost) == (want.packets, want.lost)
    for mine, theirs in [
        (got.min_delta_ms, want.min_delta_ms),
        (got.mean_delta_ms, want.mean_delta_ms),
        (got.max_delta_ms, want.max_delta_ms),
        (got.min_jitter_ms, want.min_jitter_ms),
        (got.mean_jitter_ms, want.mean_jitter_ms),
        (got.max_jitter_ms, want.max_jitter_ms),
    ]:
        assert mine == pytest.approx(theirs, rel=0.01, abs=0.01)
    assert_chunk_path_equals_frame_path(path, True)
