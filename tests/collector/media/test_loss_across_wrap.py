"""A packet reordered across the 16-bit sequence wrap: tshark counts 65,536 lost, nobody lost any.

Wireshark's cycle counter (ui/tap-rtp-analysis.c, the "under" latch) counts a
wrap when 0 arrives before 65535, and again when 1 follows 65535: one extra
cycle. We report the same ``lost`` (agreement with tshark is the contract)
and, beside it, the RFC 3550 A.1 figure that quality uses: zero.
"""

import struct
from pathlib import Path

from callqual.collector.config import CollectorConfig
from callqual.pipeline.embedded import analyze_file
from tests.tshark_reference import rtp_streams


def _write(path: Path) -> None:
    seqs = list(range(65500, 65536 + 60))
    i = seqs.index(65535)
    seqs[i], seqs[i + 1] = seqs[i + 1], seqs[i]  # 0 arrives just before 65535
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    for k, seq in enumerate(seqs):
        rtp = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, 7) + b"\xff" * 160
        udp = struct.pack("!HHHH", 4000, 4002, 8 + len(rtp), 0) + rtp
        src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), k, 0, 64, 17, 0, src, dst)
        frame = eth + ip + udp
        ts = 1000 + k * 0.02
        out.append(struct.pack("<IIII", int(ts), round((ts - int(ts)) * 1e6), len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def test_reordering_across_the_wrap(tmp_path: Path) -> None:
    path = tmp_path / "wrap.pcap"
    _write(path)
    (ref,) = rtp_streams(path, heuristic=True).values()
    assert (ref.packets, ref.lost) == (96, 65536)  # tshark: 99.9 % lost of 96 packets sent
    (ours,) = analyze_file(path, CollectorConfig(heuristic_rtp=True)).streams
    assert (ours.packets, ours.lost) == (ref.packets, ref.lost)
    assert ours.lost_rfc3550 == 0 and ours.out_of_order == 1
    assert ours.mos is not None and ours.mos > 4.3  # quality is judged on the real loss
