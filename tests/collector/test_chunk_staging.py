"""The chunk path's numpy pieces on their own: reading heads, naming distinct stream keys."""

from __future__ import annotations

import numpy as np

from callqual.collector.chunk_staging import distinct_rows, rtp_heads
from callqual.collector.decode.fast_path import RTP_HEAD_BYTES

#: The multiplier distinct_rows mixes the first half of a key with (the golden ratio, 64-bit).
_MIX = 0x9E3779B97F4A7C15


def _keys(rows: list[tuple[int, int]]) -> np.ndarray:
    """16-byte key rows from (first half, second half) pairs, as the chunk loop slices them."""
    return np.array(rows, dtype=np.uint64).view(np.uint8).reshape(len(rows), 16)


def _check(keys: np.ndarray) -> None:
    uniq, inverse = distinct_rows(keys)
    rows = [uniq[16 * i : 16 * i + 16] for i in range(len(uniq) // 16)]
    assert len(set(rows)) == len(rows) == len({k.tobytes() for k in keys})
    assert [rows[i] for i in inverse.tolist()] == [k.tobytes() for k in keys]


def test_distinct_rows_name_every_row_by_its_value() -> None:
    _check(_keys([(1, 2), (3, 4), (1, 2), (5, 6), (3, 4), (1, 2)]))


def test_distinct_rows_keep_keys_apart_whose_mix_collides() -> None:
    """Two keys whose 64-bit mix is equal still get two names: the sort of the bytes takes over."""
    a0, a1, b0 = 0x0A000001_0A000002, 0x0FA0_1388_DEADBEEF, 0x0A000003_0A000004
    b1 = ((a0 * _MIX) ^ a1 ^ (b0 * _MIX)) % (1 << 64)
    mixed = [((h0 * _MIX) % (1 << 64)) ^ h1 for h0, h1 in ((a0, a1), (b0, b1))]
    assert mixed[0] == mixed[1] and (a0, a1) != (b0, b1)
    _check(_keys([(a0, a1), (b0, b1), (a0, a1), (7, 8), (b0, b1)]))


def test_heads_of_records_near_the_end_are_zero_padded() -> None:
    data = np.arange(1, 101, dtype=np.uint8)
    positions = np.array([0, 100 - RTP_HEAD_BYTES, 90, 99], dtype=np.int64)
    heads = rtp_heads(data, positions)
    assert heads.shape == (4, RTP_HEAD_BYTES)
    for row, at in zip(heads.tolist(), positions.tolist(), strict=True):
        kept = data[at:].tolist()[:RTP_HEAD_BYTES]
        assert row == kept + [0] * (RTP_HEAD_BYTES - len(kept))


def test_heads_of_a_chunk_shorter_than_one_head() -> None:
    data = np.array([7, 8, 9], dtype=np.uint8)
    heads = rtp_heads(data, np.array([0, 2], dtype=np.int64))
    assert heads.tolist() == [[7, 8, 9] + [0] * (RTP_HEAD_BYTES - 3), [9] + [0] * (RTP_HEAD_BYTES - 1)]
