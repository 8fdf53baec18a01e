"""Raw batches as libpcap hands them to the capture thread, and their conversion to RecordBatches.

The capture thread queues what it read without touching single packets (the
GIL is the bottleneck there); the consumer turns a run of queued batches into
one :class:`RecordBatch` with numpy. Both ends agree on the shapes defined here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from callqual.collector.packet import RecordBatch

__all__ = ["META", "PACKET_OVERHEAD", "RawBatch", "RawChunk", "batch_span", "record_batch"]

META = struct.Struct("=IIII")  # next_batch record: sec, usec, offset, caplen

# A raw batch handed from the capture thread to the consumer: (packets, meta) from next_batch, or
# a list of (ts, data, wire length) from the per-packet path.
RawBatch = tuple[bytes, bytes] | list[tuple[float, bytes, int]]

#: Bytes a queued frame of the per-packet (small snaplen) path costs besides its data: the
#: bytes object's header, its tuple, the float and the int (CPython, 64-bit).
PACKET_OVERHEAD = 160


@dataclass(slots=True)
class RawChunk:
    """One raw batch in the queue, with what it counts against the queue's bounds."""

    batch: RawBatch
    frames: int
    size: int  #: bytes it holds (packet data, metadata)


def batch_span(batch: RawBatch) -> tuple[float, float]:
    """Capture times of the first and last frame of a batch."""
    if isinstance(batch, tuple):
        meta = batch[1]
        sec, usec, _, _ = META.unpack_from(meta, 0)
        sec2, usec2, _, _ = META.unpack_from(meta, len(meta) - 16)
        return sec + usec * 1e-6, sec2 + usec2 * 1e-6
    return batch[0][0], batch[-1][0]


def _columns(
    batch: RawBatch,
) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One raw batch as (buffer, start, caplen, orig_len, ts) columns."""
    if isinstance(batch, tuple):
        pkts, meta = batch
        cols = np.frombuffer(meta, np.uint32).reshape(-1, 4)  # native order, as next_batch writes it
        caplen = cols[:, 3].astype(np.int64)
        # The same two IEEE operations as the per-frame path's sec + usec * 1e-6: equal bit for bit.
        ts = cols[:, 0].astype(np.float64) + cols[:, 1].astype(np.float64) * 1e-6
        return pkts, cols[:, 2].astype(np.int64), caplen, caplen, ts
    lengths = np.fromiter((len(data) for _, data, _ in batch), np.int64, len(batch))
    return (
        b"".join(data for _, data, _ in batch),
        np.cumsum(lengths) - lengths,
        lengths,
        np.fromiter((wire for _, _, wire in batch), np.int64, len(batch)),
        np.fromiter((ts for ts, _, _ in batch), np.float64, len(batch)),
    )


def record_batch(run: list[RawChunk], linktype: int, first_number: int) -> RecordBatch:
    """A run of consecutive raw batches as one RecordBatch (their buffers joined)."""
    if len(run) == 1:
        buf, start, caplen, orig_len, ts = _columns(run[0].batch)
        return RecordBatch(buf, linktype, first_number, start, caplen, orig_len, ts)
    parts = [_columns(chunk.batch) for chunk in run]
    bases = np.cumsum([0, *(len(p[0]) for p in parts[:-1])])
    return RecordBatch(
        b"".join(p[0] for p in parts),
        linktype,
        first_number,
        np.concatenate([p[1] + base for p, base in zip(parts, bases.tolist(), strict=True)]),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]),
        np.concatenate([p[4] for p in parts]),
    )
