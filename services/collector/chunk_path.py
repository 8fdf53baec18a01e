"""The chunk path: a RecordBatch fed at once, numpy taking the RTP packets of known streams.

``Collector.run`` takes it for sources that offer ``record_batches()`` (pcap
and pcapng files, live capture). Per chunk: every record's head is read and
grouped by (flow key, SSRC) with numpy (``chunk_staging``), each group's
stream is looked up once, and the rows of known streams wait to be staged and
handed to their streams as columns, one call per stream per capture second
rather than per packet. Every other record (signalling, RTCP, new flows, other
encapsulations, the first frame of each capture second, which runs the
timers) goes through ``Collector.feed``, in order.

Order is kept where it is observable. A fed frame can read or change only the
streams of its own flow (the UDP 4-tuple udp_flow_key() names), except the
first frame of a capture second (the timers report and close streams) and a
frame udp_flow_key() cannot name (tunnels, fragments, IPv6): so the staged
packets are handed over before such a frame, or before a frame of a flow that
has packets staged. Staged packets carry the stream they were looked up for,
so later look-ups cannot redirect them. Look-ups are redone when a fed frame
changed the flow or stream tables (``MediaFlowTable.stamp``): all of them
(after handing over) after a removal, else only those of the fed frame's own
flow key, since adding a flow or a stream cannot invalidate a look-up that
succeeded, and a look-up left failed only sends packets down the (exact) slow
path. tests/collector/test_chunk_path.py holds the result to that of feeding
frame by frame. Memory: one chunk's columns plus at most STAGE_LIMIT staged packets.

Compiled (mypyc): on signalling every record is fed, and the loop around ``feed_keyed`` was a
tenth of the collector's time interpreted. Where the loop stands lives in a
:class:`ChunkProgress` the caller holds, not in locals, so that :func:`recover_chunk` reads
it after a failure (a compiled function has no frame in the traceback to read it from).
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from callqual.collector.chunk_staging import STAGE_LIMIT, Chunk, distinct_rows, rtp_heads
from callqual.collector.decode.fast_path import (
    FIXED_IP_LINKTYPES,
    RTP_STREAM_KEY,
    ip_offsets,
    ipv4_udp_rtp,
    udp_flow_key,
)
from callqual.collector.media.flow_table import MediaFlowTable, only_additions
from callqual.collector.packet import Frame, RecordBatch

if TYPE_CHECKING:  # the collector calls into this module; only its type is needed here
    from callqual.collector.collector import Collector

__all__ = ["ChunkProgress", "FrameColumns", "feed_chunk", "recover_chunk"]

#: Frames fed from one chunk before its columns are read out as Python values (FrameColumns),
#: if they are at least 1/COLUMNS_SHARE of its records so far: reading them all costs ~50 ns a
#: record and saves ~0.5 us a fed frame. A chunk of RTP feeds a few (RTCP, a second's first
#: frame: a reading there cost realistic RTP ~2 % of its CPU), one of signalling nearly all.
COLUMNS_AFTER = 64
COLUMNS_SHARE = 8


class ChunkProgress:
    """How far :func:`feed_chunk` got in a chunk: what :func:`recover_chunk` needs if it fails.

    Records before ``cur`` were fed (``fed`` of them, ``fed_bytes`` on the wire, counted by
    ``feed``) or are fast packets waiting in ``chunk`` or staged.
    """

    def __init__(self) -> None:
        self.cur = 0
        self.fed = 0
        self.fed_bytes = 0
        self.chunk: Chunk | None = None


class FrameColumns:
    """A batch's per-record columns as Python values: ``frame(i)`` is ``batch.frame(i)``.

    ``RecordBatch.frame`` reads four numpy scalars per record, a twentieth of the
    collector's time on signalling, where every record is fed; ``tolist`` reads them all at
    once, for a chunk that feeds many.
    """

    def __init__(self, batch: RecordBatch) -> None:
        self.buf = batch.buf
        self.linktype = batch.linktype
        self.first_number = batch.first_number
        self.start: list[int] = batch.start.tolist()
        self.caplen: list[int] = batch.caplen.tolist()
        self.orig_len: list[int] = batch.orig_len.tolist()
        self.ts: list[float] = batch.ts.tolist()

    def frame(self, i: int) -> Frame:
        s = self.start[i]
        data = self.buf[s : s + self.caplen[i]]
        return Frame(self.first_number + i, self.ts[i], self.linktype, data, self.orig_len[i])


def _resolve(
    chunk: Chunk, groups: Iterable[int], usable: np.ndarray, table: MediaFlowTable, fresh: bool
) -> None:
    """Look up the stream and flow of each (flow key, SSRC) group the fast path may take, in place.

    ``usable[g]`` says whether group ``g`` has a stream. The chunk's uid
    column is derived from these look-ups, so it is dropped here, where
    they change: a stale one would stage packets for a stream it no
    longer names. ``fresh``: the fast table is in step with the media registry (else nothing resolves).
    """
    chunk.uids = None
    keys = chunk.keys
    streams = chunk.streams
    flows = chunk.flows
    fast = table.fast
    for g in groups:
        at = 16 * g
        flow = fast.get(keys[at : at + 12]) if fresh else None
        stream = None
        if flow is not None and flow.foreign:
            # Another shard's: usable where one collector's would be (a stream known by its
            # ghost), so the same frames are fed; stage() reads its rows past.
            ok = flow.rtp and int.from_bytes(keys[at + 12 : at + 16]) in flow.ghosts
            chunk.foreign |= ok
            usable[g] = ok
            streams[g] = None
            flows[g] = flow if ok else None
            continue
        if flow is not None and flow.rtp:
            stream = flow.streams.get(int.from_bytes(keys[at + 12 : at + 16]))
        streams[g] = stream
        flows[g] = flow if stream is not None else None
        usable[g] = stream is not None


def feed_chunk(collector: "Collector", batch: RecordBatch, at: ChunkProgress) -> None:
    """Feed one chunk of records: the result of ``Collector.feed`` on each, numpy doing the common case.

    The per-frame loop (``frame_path``) spends microseconds of interpreter time
    on each RTP packet; here they cost a share of a few numpy passes per chunk
    (the module docstring says how order is kept). ``at`` (fresh) follows its progress.
    """
    n = len(batch)
    if not n:
        return
    feed = collector.feed
    feed_keyed = collector.feed_keyed
    staged = collector.staged
    table = collector.flow_table
    media = collector.media
    if batch.linktype not in FIXED_IP_LINKTYPES:
        staged.hand_over()
        for i in range(n):
            collector.at_frame = batch.first_number + i
            feed(batch.frame(i))
        return
    ts = batch.ts
    data = np.frombuffer(batch.buf, np.uint8)
    # Shift every record so that its IPv4 header lands where untagged Ethernet has it
    # (column 14): one fixed layout of columns whatever the link layer or VLAN tag.
    ip_at = ip_offsets(batch.linktype, data, batch.start, batch.caplen)
    shift = ip_at - 14
    origin = batch.start + shift
    usable_link = (ip_at >= 0) & (origin >= 0)
    heads = rtp_heads(data, np.where(usable_link, origin, batch.start))
    ip_caplen = batch.caplen - ip_at
    rows = np.flatnonzero(ipv4_udp_rtp(heads, ip_caplen) & usable_link)
    keys, inverse = distinct_rows(heads[rows[:, None], RTP_STREAM_KEY])
    n_groups = len(keys) // 16
    group = np.full(n, n_groups, dtype=np.int64)  # n_groups: not a fast-path frame at all
    group[rows] = inverse
    by_key: dict[bytes, list[int]] = {}
    for g in range(n_groups):
        by_key.setdefault(keys[16 * g : 16 * g + 12], []).append(g)
    chunk = Chunk(batch, heads, ip_caplen, group, keys, [None] * n_groups, [None] * n_groups)
    at.chunk = chunk
    usable = np.zeros(n_groups + 1, dtype=bool)
    _resolve(chunk, range(n_groups), usable, table, media.generation == table.fast_generation)
    has_waiting = np.zeros(n_groups + 1, dtype=bool)
    #: group of each row as Python ints: a row outside every group (signalling...) is fed
    #: without the numpy search below, which costs more than a list look-up per row
    row_groups = group.tolist()
    columns: FrameColumns | None = None
    while at.cur < n:
        cur = at.cur
        # The next frame the fast path cannot take, searched in growing windows with the
        # current look-ups and timer: typically a few hundred rows away.
        hi = cur
        width = 256
        while hi < n and row_groups[hi] != n_groups:
            take = usable[group[hi : hi + width]] & (ts[hi : hi + width] < table.next_tick)
            k = int(take.argmin())
            if not take[k]:
                hi += k
                break
            hi = min(n, hi + width)
            width *= 4
        if hi > cur:
            chunk.waiting.append((cur, hi))
            has_waiting[group[cur:hi]] = True
            collector.last_ts = float(ts[hi - 1])
        if hi == n:
            break
        if columns is None and at.fed >= COLUMNS_AFTER and at.fed * COLUMNS_SHARE >= hi:
            columns = FrameColumns(batch)
        frame = batch.frame(hi) if columns is None else columns.frame(hi)
        key = udp_flow_key(frame.linktype, frame.data)
        if (chunk.waiting or staged.seen) and (
            frame.ts >= table.next_tick
            or key is None
            or key[0] in staged.keys
            or any(has_waiting[g] for g in by_key.get(key[0], ()))
        ):
            staged.stage(chunk)
            has_waiting[:] = False
            staged.hand_over()
        before = table.stamp()
        collector.at_frame = frame.number
        feed_keyed(frame, key)
        if media.generation != table.fast_generation:
            table.sync_fast()
        at.fed += 1
        at.fed_bytes += frame.orig_len
        at.cur = hi + 1
        after = table.stamp()
        if after != before:
            if only_additions(before, after):
                _resolve(
                    chunk,
                    by_key.get(key[0], ()) if key else (),
                    usable,
                    table,
                    media.generation == table.fast_generation,
                )
            else:
                staged.stage(chunk)
                has_waiting[:] = False
                staged.hand_over()
                chunk.streams[:] = [None] * n_groups
                chunk.flows[:] = [None] * n_groups
                usable[:] = False
                if media.generation == table.fast_generation:
                    # Only groups whose flow key is in the fast table can resolve.
                    if len(table.fast) < n_groups:
                        candidates = [g for k in table.fast for g in by_key.get(k, ())]
                    else:
                        candidates = list(range(n_groups))
                    _resolve(chunk, candidates, usable, table, True)
    staged.stage(chunk)
    if staged.seen >= STAGE_LIMIT:
        staged.hand_over()
    collector.frames += n - at.fed
    collector.bytes += int(batch.orig_len.sum()) - at.fed_bytes


def recover_chunk(collector: "Collector", exc: Exception, batch: RecordBatch, at: ChunkProgress) -> None:
    """:func:`feed_chunk` raised on ``batch``: count it, and feed the records it had not taken one by one.

    Where it stopped is ``at``: records before ``at.cur`` were fed (and counted by feed) or are
    fast packets waiting in the chunk or staged.
    """
    guard = collector.guard
    staged = collector.staged
    guard.batch_failed(exc, batch)
    done = at.cur
    collector.frames += done - at.fed
    collector.bytes += int(batch.orig_len[:done].sum()) - at.fed_bytes
    chunk = at.chunk
    try:
        if chunk is not None:
            staged.stage(chunk)
        staged.hand_over()
    except Exception as again:  # the staged packets cannot be given: drop them
        guard.batch_failed(again, batch)
        collector.dropped["internal.staged_packets"] += staged.rows
        staged.clear()
    for i in range(done, len(batch)):
        try:
            frame = batch.frame(i)
        except Exception as bad:  # a record the chunk cannot even give
            guard.batch_failed(bad, batch)
            continue
        collector.feed(frame)
