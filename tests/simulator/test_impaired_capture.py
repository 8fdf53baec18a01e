"""The impairment sweep: tshark's loss count equals the injected loss for every stream and rate."""

import itertools
from pathlib import Path

import pytest

from callqual.simulator import simulate
from tests.tshark_reference import fields, requires_tshark, rtp_streams

pytestmark = [requires_tshark, pytest.mark.tshark]


@pytest.mark.parametrize("seed", [1, 2])
def test_tshark_loss_equals_injected_loss(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "impaired.pcap"
    labels = simulate("impaired", path, seed=seed, duration=8)
    seen = rtp_streams(path)
    expected = {
        (s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc): s for call in labels.calls for s in call.streams
    }
    assert set(seen) == set(expected)
    for key, stream in expected.items():
        assert (seen[key].packets, seen[key].lost) == (stream.captured, stream.lost), key
        assert seen[key].mean_jitter_ms == pytest.approx(stream.jitter_mean_ms, abs=0.002), key
        assert seen[key].max_jitter_ms == pytest.approx(stream.jitter_max_ms, abs=0.002), key
    assert fields(path, "_ws.malformed", ["frame.number"]) == []


def test_reordering_is_visible_to_tshark(tmp_path: Path) -> None:
    path = tmp_path / "impaired.pcap"
    labels = simulate("impaired", path, seed=1, duration=8)
    (call,) = [c for c in labels.calls if "reordering" in c.faults]
    ssrcs = [f"0x{s.ssrc:08x}" for s in call.streams]
    wrong = fields(path, f"rtp.ssrc == {ssrcs[0]} && rtp.seq", ["rtp.seq"])
    seqs = [int(row[0]) for row in wrong]
    assert any(b < a for a, b in itertools.pairwise(seqs) if a - b < 30000)
