"""The vectorised half of RTP stream statistics: queued column batches applied with numpy.

``rtp_stream.RtpStream._apply`` is the reference: Wireshark's arithmetic packet
by packet. This module computes the same figures for the batches where every
branch of that loop is known in advance (see :func:`drain_columns`), and hands
every other batch to the loop, so there is one definition of the arithmetic and
one fast path tested against it (``tests/collector/media/test_rtp_stream_columns.py``).
It works on RtpStream's state directly: it is that class's fast path, split out
because the two halves change for different reasons.
"""

from collections.abc import Iterable
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from callqual.collector.media.rtp_stream import (
    _MAX_CLEAN_GAP,
    _TS_HALF,
    _TS_MOD,
    COL_B1,
    COL_PAYLOAD_LEN,
    COL_RTP_TS,
    COL_SEQ,
    FloatColumn,
    Index,
    IntColumns,
    RtpStream,
)

__all__ = ["drain_columns"]

_T = TypeVar("_T", np.float64, np.int64)

#: RFC 3550 A.8 jitter filter J_k = J_(k-1) + (|D_k| - J_(k-1)) / 16 = a * J_(k-1) + x_k / 16
_JITTER_A = 15.0 / 16.0
#: Closed-form segment length: a^-256 is about 1.5e7, so the scaled sum keeps full precision.
_JITTER_SEGMENT = 256
_A_POW = _JITTER_A ** np.arange(1, _JITTER_SEGMENT + 1, dtype=np.float64)
_A_INV = 1.0 / _A_POW


def _segment_steps(values: npt.NDArray[_T], starts: Index, before: npt.NDArray[_T]) -> npt.NDArray[_T]:
    """Steps ``values[i] - values[i - 1]`` within each segment (from ``starts``), ``before[i]`` first."""
    out = np.empty_like(values)
    np.subtract(values[1:], values[:-1], out=out[1:])
    out[starts] = values[starts] - before
    return out


def drain_columns(streams: Iterable[RtpStream]) -> None:
    """Apply the queued column batches of ``streams``: vectorised across streams where clean.

    A clean batch is the steady state of a healthy stream: the same payload
    type as the previous packet, with a known clock rate and not comfort
    noise or telephone events, no marker, sequence numbers consecutive from
    the last one without a wrap, no state change of Wireshark's wrap latch,
    no delta of exactly -1 ms (the min sentinel), and every timestamp within 2^31 after the
    stream's first (tshark's in_time_sequence). For such a batch every
    branch of :meth:`RtpStream._apply` is known in advance, so everything is
    computed with numpy, the jitter filter and the running means in closed
    form (:func:`_segment_jitter`). They round differently from Wireshark's
    packet-by-packet C doubles, by parts in 10^12: far inside the 1% /
    0.01 ms the tshark comparison allows. Anything else takes the packet
    loop on the same packets. Unlike that loop, the result depends (in the
    last digits) on where a stream's packets are split into drains: blocks
    restart and means telescope at each one. It does not depend on which
    other streams are drained in the same call, so processes sharing a
    capture agree bit for bit when they keep one drain schedule (flow_shard).

    The collector drains every stream due for a report in one call: numpy
    costs a few microseconds per call whatever the array size, so one pass
    over all streams' packets (segments of one concatenated array) replaces
    some thirty calls per stream.
    """
    todo = [s for s in streams if s._col_count]
    if not todo:
        return
    ts_parts: list[FloatColumn] = []
    int_parts: list[IntColumns] = []
    sizes: list[int] = []
    for s in todo:
        ts_parts.extend(s._col_ts)
        int_parts.extend(s._col_ints)
        sizes.append(s._col_count)
        s._col_ts = []
        s._col_ints = []
        s._col_count = 0
    ts = ts_parts[0] if len(ts_parts) == 1 else np.concatenate(ts_parts)
    ints = int_parts[0] if len(int_parts) == 1 else np.concatenate(int_parts)
    counts = np.array(sizes, dtype=np.int64)
    ends = np.cumsum(counts)
    starts = ends - counts
    seg = np.repeat(np.arange(len(todo)), counts)
    seq = ints[:, COL_SEQ]
    first_seqs = seq[starts].tolist()
    last_seqs = seq[ends - 1].tolist()
    clean = [
        s._clean_start(n, first, last)
        for s, n, first, last in zip(todo, sizes, first_seqs, last_seqs, strict=True)
    ]
    # Per-stream state as columns; streams that cannot be clean get harmless stand-ins.
    infos = [s._clock_by_pt.get(s._pt) if ok else None for s, ok in zip(todo, clean, strict=True)]
    pts = np.array([s._pt for s in todo], dtype=np.int64)
    divisors = np.array([info[0] if info else 1.0 for info in infos], dtype=np.float64)
    first_ts = np.array([s._first_ts for s in todo], dtype=np.float64)
    times = np.array([s._time for s in todo], dtype=np.float64)
    ext_ts = np.array([s._ext_ts for s in todo], dtype=np.int64)
    nom_ts = np.array([s._nom_ts for s in todo], dtype=np.int64)
    jitter0 = np.array([s._jitter for s in todo], dtype=np.float64)

    # One payload type (the previous one), no marker: the whole second RTP byte is ``pt``;
    # consecutive sequence numbers; no delta of exactly -1 ms.
    now = (ts - first_ts[seg]) * 1000.0
    delta = _segment_steps(now, starts, times)
    bad = ints[:, COL_B1] != pts[seg]
    seq_step = np.diff(seq)
    bad[1:] |= (seq_step < 1) | (seq_step > _MAX_CLEAN_GAP)
    gap = np.zeros(len(seq), dtype=bool)  # a forward jump: lost packets before this one
    gap[1:] = seq_step > 1
    bad[starts] = ints[starts, COL_B1] != pts
    gap[starts] = [first > s._seq_num + 1 for s, first in zip(todo, first_seqs, strict=True)]
    bad |= delta == -1.0
    # packet-rtp.c calculate_extended_timestamp, as steps from the previous packet: the
    # low 32 bits of an extended timestamp are the RTP timestamp itself.
    step = _segment_steps(ints[:, COL_RTP_TS], starts, ext_ts & 0xFFFFFFFF)
    step[step > _TS_HALF] -= _TS_MOD
    step[step < -_TS_HALF] += _TS_MOD
    ext = np.cumsum(step)
    ext += (ext_ts - (ext[starts] - step[starts]))[seg]
    # every packet within 2^31 after the stream's first timestamp (tshark's "in_time_sequence")
    since_first = (ext - np.array([s._first_ext for s in todo], dtype=np.int64)[seg]) & 0xFFFFFFFF
    bad |= since_first >= _TS_HALF
    bad_segments = np.bincount(seg[bad], minlength=len(todo)).tolist()
    gap_segments = np.bincount(seg[gap], minlength=len(todo)).tolist()
    for i, s in enumerate(todo):
        if clean[i] and bad_segments[i]:
            clean[i] = False
        if not clean[i]:
            s._apply_columns(ts[starts[i] : ends[i]], ints[starts[i] : ends[i]])
    if not any(clean):
        return

    # Every packet has the clock rate, so the nominal reference is the previous packet's.
    nominal = (((_segment_steps(ext, starts, nom_ts) + _TS_HALF) & 0xFFFFFFFF) - _TS_HALF) / divisors[seg]
    jitters = _segment_jitter(jitter0, np.abs(delta - nominal), seg, starts, counts)

    delta_sum = np.add.reduceat(delta, starts).tolist()
    jitter_sum = np.add.reduceat(jitters, starts).tolist()
    delta_min = np.minimum.reduceat(delta, starts).tolist()
    delta_max = np.maximum.reduceat(delta, starts).tolist()
    jitter_min = np.minimum.reduceat(jitters, starts).tolist()
    jitter_max = np.maximum.reduceat(jitters, starts).tolist()
    payload = np.add.reduceat(ints[:, COL_PAYLOAD_LEN], starts).tolist()
    last = ends - 1
    last_ext = ext[last].tolist()
    last_ts = ts[last].tolist()
    last_now = now[last].tolist()
    last_jitter = jitters[last].tolist()
    for i, s in enumerate(todo):
        if not clean[i]:
            continue
        n = sizes[i]
        # Wireshark's running means, mean_k = (mean_(k-1) * (k-1) + v_k) / k, telescope to the
        # plain mean of everything seen; one division per batch instead of one per packet.
        prev = s._total - 1
        count = prev + n
        s._delta_mean = (s._delta_mean * prev + delta_sum[i]) / count
        s._jitter_mean = (s._jitter_mean * prev + jitter_sum[i]) / count
        s._delta_min = delta_min[i] if s._delta_min == -1.0 else min(s._delta_min, delta_min[i])
        s._delta_max = max(s._delta_max, delta_max[i])
        s._jitter_min = jitter_min[i] if s._jitter_min == -1.0 else min(s._jitter_min, jitter_min[i])
        s._jitter_max = max(s._jitter_max, jitter_max[i])
        s._jitter = last_jitter[i]
        s._total += n
        s._last_ts = last_ts[i]
        s._time = last_now[i]
        s._stop_seq = last_seqs[i]
        s._seq_num = last_seqs[i]
        s._ext_ts = last_ext[i]
        s._seq_ts = last_ext[i]
        s._nom_ts = last_ext[i]
        s._payload_bytes += payload[i]
        gaps = gap_segments[i]
        if gaps:
            s._seq_errors += gaps  # packet-rtp's "wrong sequence number", once per forward jump
            s.problem = True
        bitmap = s._bitmap
        if bitmap is not None:
            if gaps:
                base = s._hi_seq & 0xFFFF  # == the previous _seq_num (see _clean_start)
                span = last_seqs[i] - base
                received = np.zeros(span, dtype=np.uint8)
                received[seq[starts[i] : ends[i]] - base - 1] = 1
                bitmap.extend(received.tobytes())
                s._hi_seq += span
            else:
                bitmap.extend(b"\x01" * n)
                s._hi_seq += n


def _segment_jitter(j0: FloatColumn, x: FloatColumn, seg: Index, starts: Index, counts: Index) -> FloatColumn:
    """Every J_k of the jitter filter over each segment of ``x`` (the |D_k|), segment i from J = ``j0[i]``.

    Closed form: J_k = a^k * (J_0 + 1/16 * sum_(i<=k) a^-i * x_i). All terms
    are non-negative, so the cumulative sum loses nothing to cancellation;
    blocks of _JITTER_SEGMENT packets bound a^-k. Each segment is cut into
    such blocks from its start, laid out as rows of one zero-padded matrix:
    the within-block cumulative sums are then one numpy call. Blocks depend
    on the previous block's last J, so only the block ordinal is looped.
    """
    width = _JITTER_SEGMENT
    local = np.arange(len(x)) - starts[seg]
    ordinal = local // width
    column = local % width
    blocks = (counts + width - 1) // width
    first_block = np.cumsum(blocks) - blocks
    row = first_block[seg] + ordinal
    scaled = np.zeros((int(blocks.sum()), width))
    scaled[row, column] = x * _A_INV[column]
    sums = np.cumsum(scaled, axis=1) / 16.0
    out = np.empty_like(scaled)
    j = j0.copy()  # each segment's J before its next block
    for o in range(int(blocks.max())):
        has = np.flatnonzero(blocks > o)
        rows = first_block[has] + o
        out[rows] = _A_POW * (j[has][:, None] + sums[rows])
        j[has] = out[rows, np.minimum(counts[has] - o * width, width) - 1]
    jitters: FloatColumn = out[row, column]
    return jitters
