"""The chunk path's numpy side: RTP heads read per chunk, and fast packets staged per capture second.

The chunk loop (``chunk_path``) reads a whole RecordBatch at once: each
record's leading bytes as one row (:func:`rtp_heads`), its (flow, SSRC) group
(:func:`distinct_rows`), and the fast rows' RTP header fields as columns. Those
columns wait in :class:`StagedPackets` and go to their streams in one call per
stream (:meth:`StagedPackets.hand_over`), not one per packet: the Python cost
of an RTP packet becomes a share of a numpy pass.
"""

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from callqual.collector.decode.fast_path import ETH_IPV4_UDP_PAYLOAD, RTP_HEAD_BYTES
from callqual.collector.media.media_flow import MediaFlow
from callqual.collector.media.rtp_stream import (
    COL_B1,
    COL_FIRST_BYTE,
    COL_PAYLOAD_LEN,
    COL_RTP_TS,
    COL_SEQ,
    N_COLUMNS,
    RtpStream,
)
from callqual.collector.packet import RecordBatch

__all__ = ["STAGE_LIMIT", "Chunk", "StagedPackets", "distinct_rows", "rtp_heads"]

#: Staged fast-path packets (see chunk_path) before they are handed over regardless:
#: bounds the memory a capture second of a very busy link can hold (48 bytes a packet).
STAGE_LIMIT = 1 << 18


def rtp_heads(data: npt.NDArray[np.uint8], positions: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """RTP_HEAD_BYTES bytes of ``data`` from each position, one row each (short records run over)."""
    last = len(data) - RTP_HEAD_BYTES
    if last < 0:
        data = np.concatenate([data, np.zeros(RTP_HEAD_BYTES, np.uint8)])
        last = len(data) - RTP_HEAD_BYTES
    # Rows of a sliding window view: one contiguous copy per record, much cheaper than a
    # fancy index per byte. A record too close to the end of the chunk gets its row padded.
    heads = sliding_window_view(data, RTP_HEAD_BYTES)[np.minimum(positions, last)]
    for i in np.flatnonzero(positions > last).tolist():
        s = int(positions[i])
        row = np.zeros(RTP_HEAD_BYTES, np.uint8)
        row[: len(data) - s] = data[s:]
        heads[i] = row
    return heads


def distinct_rows(keys: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Distinct 16-byte rows of ``keys``, concatenated, and each row's index among them.

    np.unique on a 64-bit mix of the two halves sorts integers, several
    times faster than sorting 16-byte strings; a collision (rows that mix
    alike but differ) is detected and then the strings are sorted after all.
    Any row of a value serves as its representative: asking np.unique for
    the first ones (return_index) makes it sort stably, 3x slower.
    """
    halves = keys.view(np.uint64)
    mixed = (halves[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ halves[:, 1]
    values, inverse = np.unique(mixed, return_inverse=True)
    inverse = inverse.ravel()
    first = np.zeros(len(values), dtype=np.int64)
    first[inverse] = np.arange(len(inverse))
    if bool((halves == halves[first][inverse]).all()):
        return keys[first].tobytes(), inverse
    uniq, inverse = np.unique(keys.view("V16").ravel(), return_inverse=True)
    return uniq.tobytes(), inverse.ravel()


def _radix_key(uids: np.ndarray) -> np.ndarray:
    """``uids`` as a key that sorts alike, 16-bit where their span allows it.

    numpy's stable sort is a radix sort for 8- and 16-bit integers, ~6x faster than its
    merge sort of int64: that sort was most of the hand-over (0.11 s of a 1.2 M-packet run).
    """
    low = int(uids.min())
    span = int(uids.max()) - low
    if span > 0xFFFF:
        return uids
    return (uids - low).astype(np.uint8 if span <= 0xFF else np.uint16)


@dataclass(slots=True)
class Chunk:
    """One RecordBatch being fed: its decoded heads, each row's group and each group's look-up."""

    batch: RecordBatch
    #: each record's leading bytes, shifted so that its IPv4 header starts at column 14
    heads: np.ndarray
    #: each record's length from its IPv4 header on
    ip_caplen: np.ndarray
    group: np.ndarray
    #: 16 bytes per group: udp_flow_key() bytes, then the SSRC
    keys: bytes
    streams: list[RtpStream | None]
    flows: list[MediaFlow | None]
    #: fast rows [lo, hi) not yet staged
    waiting: list[tuple[int, int]] = field(default_factory=list)
    #: each group's stream uid (-1: none), rebuilt after the look-ups change (None: stale)
    uids: np.ndarray | None = None
    #: uid -> (stream, flow) of the groups' look-ups, built with ``uids``
    refs: dict[int, tuple[RtpStream, MediaFlow]] = field(default_factory=dict)
    #: the StagedPackets epoch that last received ``refs`` (-1: none)
    given: int = -1
    #: some groups are another shard's flows: usable (read past) but never staged
    foreign: bool = False


def _read_past(chunk: Chunk, rows: np.ndarray, groups: np.ndarray) -> None:
    """Another shard's fast-path rows: not kept, but each flow's last arrival is, as at a hand-over."""
    if not len(rows):
        return
    distinct, last_from_end = np.unique(groups[::-1], return_index=True)
    last = len(rows) - 1 - last_from_end
    times = chunk.batch.ts[rows[last]].tolist()
    # in arrival order, so that a flow with several SSRCs (groups) ends with its latest packet
    for i in np.argsort(last).tolist():
        flow = chunk.flows[int(distinct[i])]
        assert flow is not None
        flow.last_ts = times[i]


class StagedPackets:
    """Fast-path packets read from chunks, already tied to their streams, not yet given to them.

    Handing packets over costs a call per stream, so it is done once per
    capture second (or when order demands it), not at every chunk: the
    packets wait here as columns with the uid of their stream
    (RtpStream.uid), numpy naming streams without a Python loop per packet.
    """

    __slots__ = ("_ints", "_times", "_uids", "epoch", "keys", "refs", "rows", "seen")

    def __init__(self) -> None:
        #: uid -> (stream, flow) of every stream with staged packets (and of their chunks' others)
        self.refs: dict[int, tuple[RtpStream, MediaFlow]] = {}
        #: flow keys (udp_flow_key() bytes) with staged packets, another shard's flows' too
        self.keys: set[bytes] = set()
        self.rows = 0
        #: rows staged, another shard's (read past, not kept) too: when to hand over
        self.seen = 0
        #: bumped at every clear(), so a chunk knows when to give its refs again
        self.epoch = 0
        self._uids: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._ints: list[np.ndarray] = []

    def stage(self, chunk: Chunk) -> None:
        """Decode the chunk's waiting rows into columns and keep them, with their streams."""
        ranges = chunk.waiting
        if not ranges:
            return
        chunk.waiting = []
        if len(ranges) == 1:
            rows = np.arange(*ranges[0])
        else:
            rows = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
        groups = chunk.group[rows]
        if chunk.uids is None:
            chunk.refs = {s.uid: (s, f) for s, f in zip(chunk.streams, chunk.flows, strict=True) if s and f}
            chunk.uids = np.array([-1 if s is None else s.uid for s in chunk.streams] + [-1], dtype=np.int64)
            chunk.given = -1
        if chunk.given != self.epoch:
            self.refs.update(chunk.refs)
            chunk.given = self.epoch
        keys = chunk.keys
        # bincount, not np.unique: one pass instead of a sort of every staged row
        self.keys.update(keys[16 * g : 16 * g + 12] for g in np.flatnonzero(np.bincount(groups)).tolist())
        self.seen += len(rows)
        if chunk.foreign:
            mine = chunk.uids[groups] >= 0
            _read_past(chunk, rows[~mine], groups[~mine])
            rows = rows[mine]
            groups = groups[mine]
            if not len(rows):
                return
        # Bytes 43..54: the RTP header from its second byte, then the first payload byte.
        h = chunk.heads[rows, 43:55]
        ints = np.empty((len(rows), N_COLUMNS), dtype=np.int64)
        ints[:, COL_SEQ] = np.ascontiguousarray(h[:, 1:3]).view(">u2")[:, 0]
        ints[:, COL_RTP_TS] = np.ascontiguousarray(h[:, 3:7]).view(">u4")[:, 0]
        ints[:, COL_B1] = h[:, 0]
        ints[:, COL_PAYLOAD_LEN] = chunk.ip_caplen[rows] - (ETH_IPV4_UDP_PAYLOAD - 14 + 12)
        ints[:, COL_FIRST_BYTE] = h[:, 11]
        self._uids.append(chunk.uids[groups])
        self._times.append(chunk.batch.ts[rows])
        self._ints.append(ints)
        self.rows += len(rows)

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every staged packet in arrival order: stream uid, capture time and the add_columns matrix."""
        if len(self._uids) == 1:
            return self._uids[0], self._times[0], self._ints[0]
        return np.concatenate(self._uids), np.concatenate(self._times), np.concatenate(self._ints)

    def hand_over(self) -> None:
        """Give every staged packet to its stream as columns, and each flow its last arrival."""
        if not self.rows:
            if self.seen:
                self.clear()  # another shard's packets only: nothing to give
            return
        uids, times, ints = self.take()
        order = np.argsort(_radix_key(uids), kind="stable")
        uids = uids[order]
        times = times[order]
        ints = ints[order]
        cuts = [0, *(np.flatnonzero(np.diff(uids)) + 1).tolist(), len(uids)]
        last: dict[int, tuple[int, float, MediaFlow]] = {}
        refs = self.refs
        # Views, not copies: a stream holds its columns until its next report (seconds), so at
        # most those seconds' hand-over arrays stay alive.
        for lo, hi in pairwise(cuts):
            stream, flow = refs[int(uids[lo])]
            stream.add_columns(times[lo:hi], ints[lo:hi])
            row = int(order[hi - 1])
            seen = last.get(id(flow))
            if seen is None or seen[0] < row:
                last[id(flow)] = (row, float(times[hi - 1]), flow)
        for _, when, flow in last.values():
            flow.last_ts = when
        self.clear()

    def clear(self) -> None:
        self.epoch += 1
        self.refs = {}
        self.keys = set()
        self.rows = 0
        self.seen = 0
        self._uids = []
        self._times = []
        self._ints = []
