"""pcapng as :class:`RecordBatch` columns: the reader of the collector's chunk path.

It reads exactly the frames :mod:`pcapng_frames` reads (the tests compare the
two on every capture), but an Enhanced Packet Block costs only its offset in
Python; header fields and timestamps are gathered for the whole batch with numpy.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from callqual.collector.capture import capture_stream
from callqual.collector.capture.capture_stream import MAX_RECORD, STREAK, CaptureStream
from callqual.collector.capture.pcapng_blocks import (
    BT_EPB,
    BT_IDB,
    BT_PB,
    BT_SPB,
    SHB_TYPE,
    UNUSABLE_INTERFACE,
    Interface,
    epb_seconds,
    epb_timestamp,
    interface_block,
    section_byte_order,
    spb_caplen,
    ticks_per_second,
)
from callqual.collector.packet import RecordBatch

__all__ = ["read_pcapng_batches"]


def read_pcapng_batches(src: CaptureStream) -> Iterator[RecordBatch]:
    """read_pcapng_frames's block walk and error handling, RecordBatches instead of one Frame per packet.

    Blocks are walked one by one in Python (a block's length gives the
    next one's offset) and an Enhanced Packet Block contributes only its
    offset; its header fields and timestamp are read with numpy for the
    whole batch (:func:`_assemble_batch`). After STREAK accepted EPBs of
    one length in a row, the blocks that follow are checked in bulk with
    strided reads (block type, both length fields, interface, caplen
    bound) and taken as long as they agree; the first that differs
    continues the walk. Obsolete Packet Blocks and Simple Packet Blocks
    are rare and decoded in Python. A batch is cut where the packets'
    link type changes and at a section header (its byte order and
    interface table may differ); else there is one batch per chunk read.
    """
    order = "<"
    # Per-section interface table, as read_pcapng_frames's: (linktype, seconds per tick, ts offset, snaplen)
    ifaces: list[Interface] = []
    if_lt: list[int] = []  # the link types alone, for the walk
    lt_table: np.ndarray | None = None  # the same as an array, for the bulk checks; built on demand
    head = struct.Struct(order + "II").unpack_from
    word = struct.Struct(order + "I").unpack_from
    epb_check = struct.Struct(order + "I8xI").unpack_from  # interface id, caplen
    u32 = np.dtype(np.uint32).newbyteorder("<" if order == "<" else ">")
    number = 0
    last_ts = 0.0  # the timestamp an SPB reuses; see last_at
    # Offset in the buffer of the EPB that set the latest timestamp, or -1 when last_ts is
    # current: computed only when an SPB needs it or before the buffer or interfaces change.
    last_at = -1
    # The pending batch: EPB offsets (whole arrays for bulk runs, walked offsets since the
    # last run) and, decoded in Python, PB/SPB records as (index in batch, start, caplen,
    # orig_len, ts). seg_lt is its link type, None while it is empty.
    pieces: list[np.ndarray] = []
    walked: list[int] = []
    keep = walked.append
    extra: list[tuple[int, int, int, int, float]] = []
    in_pieces = 0
    seg_lt: int | None = None
    while True:
        buf = src.buf
        pos = src.pos
        end = len(buf)
        need = 12
        fail = ""
        cut = False
        size = 0
        streak = 0
        while pos + 12 <= end:
            btype, blen = head(buf, pos)
            if btype == SHB_TYPE:  # the magic reads the same in both byte orders
                if seg_lt is not None:
                    cut = True  # the pending records were read with the old section's tables
                    break
                if last_at >= 0:
                    last_ts = epb_timestamp(order, buf, last_at, ifaces)
                    last_at = -1
                section_order = section_byte_order(buf, pos)
                if section_order is None:
                    fail = "pcapng.bad_section_header"
                    break
                order = section_order
                head = struct.Struct(order + "II").unpack_from
                word = struct.Struct(order + "I").unpack_from
                epb_check = struct.Struct(order + "I8xI").unpack_from
                u32 = np.dtype(np.uint32).newbyteorder("<" if order == "<" else ">")
                ifaces = []
                if_lt = []
                lt_table = None
                size = streak = 0
                btype, blen = head(buf, pos)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                fail = "pcapng.bad_block_length"
                break
            stop = pos + blen
            if stop > end:
                need = blen
                break
            if word(buf, stop - 4)[0] != blen:
                fail = "pcapng.bad_block_length"
                break
            if btype == BT_EPB:
                if blen < 32:
                    src.errors["pcapng.bad_packet_block"] += 1
                    pos = stop
                    continue
                ifid, caplen = epb_check(buf, pos + 8)
                if ifid >= len(if_lt):
                    src.errors["pcapng.unknown_interface"] += 1
                    pos = stop
                    continue
                if caplen > blen - 32:
                    src.errors["pcapng.bad_caplen"] += 1
                    pos = stop
                    continue
                linktype = if_lt[ifid]
                if linktype != seg_lt:
                    if seg_lt is not None:
                        cut = True
                        break
                    seg_lt = linktype
                keep(pos)
                last_at = pos
                if blen != size:
                    size = blen
                    streak = 0
                else:
                    streak += 1
                    if streak >= STREAK:
                        # EPBs of one length in a row (RTP of one codec): check the blocks
                        # that follow in strided reads, in windows that grow 4x, and take
                        # as many as agree; the first that differs continues the walk.
                        if lt_table is None:
                            lt_table = np.array(if_lt, dtype=np.int64)
                        last_if = len(if_lt) - 1
                        window = 256
                        while (count := min(window, (end - stop) // blen)) > 0:
                            fields = np.ndarray((count, 7), u32, buf, stop, (blen, 4))
                            trailers = np.ndarray((count,), u32, buf, stop + blen - 4, (blen,))
                            ids = fields[:, 2]
                            ok = (
                                (fields[:, 0] == BT_EPB)
                                & (fields[:, 1] == blen)
                                & (trailers == blen)
                                & (fields[:, 5] <= blen - 32)
                                & (ids <= last_if)
                            )
                            ok &= lt_table[np.minimum(ids, last_if)] == linktype
                            taken = int(ok.argmin()) if not ok.all() else count
                            if taken:
                                if walked:
                                    pieces.append(np.array(walked, dtype=np.int64))
                                    in_pieces += len(walked)
                                    walked.clear()
                                pieces.append(np.arange(stop, stop + taken * blen, blen, dtype=np.int64))
                                in_pieces += taken
                                stop += taken * blen
                                last_at = stop - blen
                            if taken < count:
                                break
                            window *= 4
                        streak = 0
            elif btype in (BT_PB, BT_SPB):
                if btype == BT_PB:
                    if blen < 32:
                        src.errors["pcapng.bad_packet_block"] += 1
                        pos = stop
                        continue
                    ifid, _drops, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(
                        order + "HHIIII", buf, pos + 8
                    )
                    if ifid >= len(ifaces):
                        src.errors["pcapng.unknown_interface"] += 1
                        pos = stop
                        continue
                    if caplen > blen - 32:
                        src.errors["pcapng.bad_caplen"] += 1
                        pos = stop
                        continue
                    linktype, tick, offset, _snap = ifaces[ifid]
                    ts = epb_seconds((ts_hi << 32) | ts_lo, tick, offset)
                    start = pos + 28
                else:
                    if not ifaces:
                        src.errors["pcapng.unknown_interface"] += 1
                        pos = stop
                        continue
                    (origlen,) = word(buf, pos + 8)
                    linktype, _tick, _offset, snap = ifaces[0]
                    caplen = spb_caplen(origlen, blen, snap)
                    if last_at >= 0:
                        last_ts = epb_timestamp(order, buf, last_at, ifaces)
                    ts = last_ts
                    start = pos + 12
                if linktype != seg_lt:
                    if seg_lt is not None:
                        cut = True
                        break
                    seg_lt = linktype
                extra.append((in_pieces + len(walked) + len(extra), start, caplen, origlen, ts))
                last_ts = ts
                last_at = -1
                size = streak = 0
            elif btype == BT_IDB:
                iface = interface_block(order, buf, pos, blen)
                if iface is None:
                    src.errors["pcapng.bad_interface_block"] += 1
                    iface = UNUSABLE_INTERFACE
                ifaces.append(iface)
                if_lt.append(iface[0])
                lt_table = None
            # Every other block type is skipped.
            pos = stop
        src.pos = pos
        if seg_lt is not None:
            batch = _assemble_batch(
                buf,
                u32,
                ifaces,
                linktype=seg_lt,
                first_number=number + 1,
                pieces=pieces,
                walked=walked,
                extra=extra,
            )
            number += len(batch)
            pieces.clear()
            walked.clear()
            extra.clear()
            in_pieces = 0
            seg_lt = None
            yield batch
        if fail:
            src.errors[fail] += 1
            return
        if cut:
            continue  # the same buffer, from the record that starts the next batch
        if last_at >= 0:
            last_ts = epb_timestamp(order, buf, last_at, ifaces)
            last_at = -1
        if not src.more(need, capture_stream.BATCH_CHUNK):
            return


def _assemble_batch(
    buf: bytes,
    u32: np.dtype[np.uint32],
    ifaces: list[Interface],
    *,
    linktype: int,
    first_number: int,
    pieces: list[np.ndarray],
    walked: list[int],
    extra: list[tuple[int, int, int, int, float]],
) -> RecordBatch:
    """The RecordBatch of EPBs at the offsets in ``pieces`` then ``walked``, with the ``extra`` records.

    The EPB fields are gathered as one 20-byte element per block (interface
    id, timestamp halves, caplen, orig_len) from an overlapping view. The
    timestamp is :func:`_epb_seconds` of the block's interface in
    float64, the operations and roundings of read_pcapng_frames's Python floats,
    so the two agree bit for bit. ``extra`` records go to the indices they name.
    """
    if walked:
        pieces = [*pieces, np.array(walked, dtype=np.int64)]
    at = np.concatenate(pieces) if len(pieces) > 1 else pieces[0] if pieces else np.empty(0, dtype=np.int64)
    if len(at):
        heads = np.ndarray((len(buf) - 27,), "V20", buf, 8, (1,))[at].view(u32).reshape(-1, 5)
        ifid = heads[:, 0].astype(np.intp)
        ticks = (heads[:, 1].astype(np.uint64) << np.uint64(32)) | heads[:, 2].astype(np.uint64)
        per = [ticks_per_second(tick) for _lt, tick, _off, _snap in ifaces]
        if max(per) < 1 << 63 and all(abs(off) < 1 << 62 for _lt, _tick, off, _snap in ifaces):
            # _epb_seconds, vectorised: the same integer split and the same float operations.
            per_iface = np.array(per, dtype=np.uint64)[ifid]
            tick_iface = np.array([tick for _lt, tick, _off, _snap in ifaces], dtype=np.float64)[ifid]
            offsets = np.array([off for _lt, _tick, off, _snap in ifaces], dtype=np.int64)[ifid]
            sec = (offsets + (ticks // per_iface).astype(np.int64)).astype(np.float64)
            ts = sec + (ticks % per_iface).astype(np.float64) * tick_iface
        else:  # absurd resolutions or offsets: exact Python integers, record by record
            found = zip(ticks.tolist(), ifid.tolist(), strict=True)
            ts = np.array([epb_seconds(t, ifaces[i][1], ifaces[i][2]) for t, i in found], dtype=np.float64)
        start = at + 28
        caplen = heads[:, 3].astype(np.int64)
        orig_len = heads[:, 4].astype(np.int64)
    else:
        ts = np.empty(0, dtype=np.float64)
        start = caplen = orig_len = at
    if extra:
        n = len(at) + len(extra)
        slots = np.array([e[0] for e in extra], dtype=np.int64)
        rest = np.ones(n, dtype=bool)
        rest[slots] = False
        columns = []
        for k, (column, dtype) in enumerate(
            ((start, np.int64), (caplen, np.int64), (orig_len, np.int64), (ts, np.float64)), 1
        ):
            full = np.empty(n, dtype=dtype)
            full[rest] = column
            full[slots] = [e[k] for e in extra]
            columns.append(full)
        start, caplen, orig_len, ts = columns
    return RecordBatch(buf, linktype, first_number, start, caplen, orig_len, ts)
