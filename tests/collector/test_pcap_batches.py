"""Classic pcap through CaptureFile.record_batches() must give exactly what frame iteration gives.

The batch reader walks records of varying size one by one, takes runs of one
size in bulk, catches impossible lengths in bulk after the walk and refills its
buffer by reading the unused tail again: each is checked against iteration here,
with chunk boundaries anywhere (the ``chunk`` fixture).
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from callqual.collector.capture import pcap_records
from tests.collector.pcapcraft import ether, ipv4, udp, write_pcap
from tests.collector.test_pcapng_batches import check, chunk

__all__ = ["chunk"]  # the fixture, used by name


@pytest.fixture(params=[None, 0.0, 1.01], ids=["adaptive", "always-runs", "never-runs"])
def runs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether the walk looks for runs of one size: as the previous chunk suggests, always, or never."""
    if request.param is not None:
        monkeypatch.setattr(pcap_records, "RUNS_PAY", request.param)


def _frame(size: int) -> bytes:
    return ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(4000, 5000, bytes(size))))


def _mixed(n: int, seed: int) -> list[tuple[float, bytes]]:
    """Interleaved codecs: runs of one size (some longer than the bulk threshold) and lone sizes."""
    rng = random.Random(seed)
    out: list[tuple[float, bytes]] = []
    while len(out) < n:
        size = rng.choice([172, 32, 160, 61, 87, 172])
        out.extend((1.7e9 + len(out) * 0.001, _frame(size)) for _ in range(rng.choice([1, 1, 2, 3, 20, 300])))
    return out[:n]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.usefixtures("runs")
def test_mixed_record_sizes(tmp_path: Path, chunk: int | None, order: str) -> None:
    path = write_pcap(tmp_path / "m.pcap", _mixed(3000, 7), order=order)
    frames, batches, cap = check(path)
    assert len(frames) == 3000
    assert not cap.errors and not cap.truncated
    assert cap.bytes_read == cap.size
    if chunk is None:
        assert len(batches) == 1


@pytest.mark.usefixtures("runs")
def test_impossible_length_inside_the_chunk_stops_like_iteration(tmp_path: Path, chunk: int | None) -> None:
    """A caplen over the limit whose bytes are all there: framing is lost at it, whatever the chunk."""
    path = write_pcap(tmp_path / "b.pcap", _mixed(200, 3))
    bad = struct.pack("<IIII", 1, 0, 300_000, 300_000) + bytes(300_000)
    path.write_bytes(path.read_bytes() + bad + path.read_bytes()[24:])
    frames, _batches, cap = check(path)
    assert len(frames) == 200
    assert cap.errors["pcap.bad_caplen"] == 1


def test_truncated_at_every_offset(tmp_path: Path) -> None:
    blob = write_pcap(tmp_path / "w.pcap", _mixed(40, 11)).read_bytes()
    path = tmp_path / "cut.pcap"
    truncated = 0
    for n in range(24, len(blob) + 1, 7):
        path.write_bytes(blob[:n])
        _frames, _batches, cap = check(path)
        truncated += cap.truncated
    assert truncated > 0
