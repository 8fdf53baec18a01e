"""A fuzz corpus on disk: mutated captures as files, for ``callqual analyze`` to read.

Frame mutations test the pipeline; these files also test the capture reader:
besides captures of mutated frames, :func:`broken_files` damages the file
structure itself (magic, version, link type, snap length, record lengths,
pcapng block lengths, a cut in the middle of a record, trailing junk).
Generated from a seed at test time, never committed.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

from callqual.collector.packet import Frame

_PCAP_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_MAGIC_US = 0xA1B2C3D4


def pcap_bytes(frames: Sequence[Frame], snaplen: int = 262_144) -> bytes:
    """A classic microsecond pcap of ``frames`` (the link type of the first one)."""
    linktype = frames[0].linktype if frames else 1
    parts = [_PCAP_HEADER.pack(_MAGIC_US, 2, 4, 0, 0, snaplen, linktype)]
    for f in frames:
        us = min(max(round(f.ts * 1e6), 0), 0xFFFFFFFF * 1_000_000)  # what 32-bit seconds can hold
        parts.append(_RECORD.pack(us // 1_000_000, us % 1_000_000, len(f.data), max(f.orig_len, len(f.data))))
        parts.append(f.data)
    return b"".join(parts)


def _u32_at(data: bytearray, at: int, value: int) -> None:
    if at + 4 <= len(data):
        data[at : at + 4] = struct.pack("<I", value & 0xFFFFFFFF)


def _record_offsets(data: bytes) -> list[int]:
    """Where each record header of a classic little-endian pcap starts (stops at the first bad one)."""
    out, at = [], _PCAP_HEADER.size
    while at + _RECORD.size <= len(data):
        out.append(at)
        at += _RECORD.size + _RECORD.unpack_from(data, at)[2]
    return out


def broken_files(rng: random.Random, capture: bytes) -> Iterator[tuple[str, bytes]]:
    """Structural damage to one capture file's bytes, one named variant at a time."""
    yield "empty", b""
    yield "header_only", capture[:24]
    yield "cut_mid_record", capture[: rng.randrange(25, max(26, len(capture)))]
    yield "junk_after", capture + rng.randbytes(rng.randint(1, 40))
    flipped = bytearray(capture)
    for _ in range(8):
        at = rng.randrange(min(len(flipped), 24))
        flipped[at] ^= 1 << rng.randrange(8)
    yield "header_bits", bytes(flipped)
    for name, at, value in (
        ("version_0", 4, 0),
        ("snaplen_0", 16, 0),
        ("linktype_ffff", 20, 0xFFFF),
        ("linktype_0", 20, 0),
    ):
        out = bytearray(capture)
        if at == 4:
            out[4:8] = b"\0\0\0\0"
        else:
            _u32_at(out, at, value)
        yield name, bytes(out)
    records = _record_offsets(capture) if capture[:4] == struct.pack("<I", _MAGIC_US) else []
    if records:
        at = rng.choice(records)
        for name, field, value in (
            ("caplen_0", 8, 0),
            ("caplen_huge", 8, 0xFFFFFFFF),
            ("caplen_past_snaplen", 8, 300_000),
            ("orig_len_0", 12, 0),
            ("ts_usec_over", 4, 2_000_000),
            ("ts_sec_max", 0, 0xFFFFFFFF),
        ):
            out = bytearray(capture)
            _u32_at(out, at + field, value)
            yield name, bytes(out)
    else:  # pcapng: the second block's length, at 0 and at all ones
        first_len = struct.unpack_from("<I", capture, 4)[0] if len(capture) >= 8 else 0
        for name, value in (("block_len_0", 0), ("block_len_huge", 0xFFFFFFFF), ("block_len_odd", 13)):
            out = bytearray(capture)
            _u32_at(out, first_len + 4, value)
            yield name, bytes(out)
        packet = _first_block(capture, 6)
        if packet is not None:  # an enhanced packet's timestamp, 64 bits: past year 9999
            out = bytearray(capture)
            _u32_at(out, packet + 12, 0xFFFFFFF0)
            yield "ts_far_future", bytes(out)


def _first_block(capture: bytes, block_type: int) -> int | None:
    """Offset of the first pcapng block of ``block_type`` (little-endian files), if any."""
    at = 0
    while at + 8 <= len(capture):
        kind, length = struct.unpack_from("<II", capture, at)
        if kind == block_type:
            return at
        if length < 12:
            return None
        at += length
    return None


def write_corpus(directory: Path, files: Iterator[tuple[str, bytes]]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files:
        path = directory / name
        path.write_bytes(data)
        paths.append(path)
    return paths
