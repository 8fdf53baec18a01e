"""Reading pcap and pcapng capture files into :class:`Frame` values.

This is an adapter (it does file I/O); everything downstream of it is pure.
The parser is our own rather than dpkt's because dpkt.pcapng applies one
timestamp resolution to the whole file and stops at the first unknown
situation, while a capture taken on several interfaces (``-i any`` on some
systems, dumpcap with several ``-i``) carries a link type and a timestamp
resolution per Interface Description Block and must be honoured per frame.

The file is read in large chunks and records are cut with ``struct`` at fixed
offsets, which keeps the per-frame cost at roughly one microsecond.

A file that is not a capture raises :class:`CaptureFormatError` at open time.
Damage found later never raises: a file that ends inside a record sets
``truncated``; a record whose framing is impossible (the file cannot be
resynchronised after it) stops reading and is counted in ``errors``; a record
that is merely unusable (unknown interface, inconsistent lengths) is skipped
and counted.
"""

from __future__ import annotations

import inspect
import os
import struct
from collections.abc import Iterator
from types import TracebackType

import numpy as np

from callqual.collector.capture import capture_stream
from callqual.collector.capture.capture_stream import MAX_RECORD, STREAK, CaptureStream
from callqual.collector.capture.other_formats import MAGIC_BYTES_NEEDED, describe_other_format
from callqual.collector.capture.pcap_records import PCAP_MAGICS, read_pcap_batches, read_pcap_frames
from callqual.collector.capture.pcapng_blocks import (
    BT_EPB,
    BT_IDB,
    BT_PB,
    BT_SPB,
    SHB_MAGIC,
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
from callqual.collector.errors import CaptureFormatError
from callqual.collector.packet import Frame, RecordBatch

__all__ = ["CaptureFile", "RecordBatch", "open_capture"]


class CaptureFile(CaptureStream):
    """An open capture file: a context manager and an iterator of :class:`Frame`.

    ``bytes_read`` and ``size`` exist for progress reporting; both count bytes
    of the file on disk (compressed bytes for a ``.gz`` capture).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.format = ""  #: 'pcap' or 'pcapng'
        try:
            head = self.buf
            if not head:
                raise CaptureFormatError("capture.empty", self.path)
            if len(head) < 4:
                raise CaptureFormatError("capture.unknown_format", "shorter than a magic number")
            if head == SHB_MAGIC:
                self.format = "pcapng"
                self._frames: Iterator[Frame] = self._read_pcapng()
            elif head in PCAP_MAGICS:
                self.format = "pcap"
                self._magic = head
                self._frames = read_pcap_frames(self, *PCAP_MAGICS[head])
            else:
                known = describe_other_format(head + self.read(MAGIC_BYTES_NEEDED - 4), self.path)
                if known is not None:
                    raise CaptureFormatError("capture.other_format", known)
                raise CaptureFormatError("capture.unknown_format", f"magic {head.hex()}")
            self._check_header()
        except BaseException:
            self.close()
            raise

    # -- public protocol -------------------------------------------------------------------------

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        # Handing out the generator itself (not self) saves a Python-level
        # __next__ call per frame on the hot loop.
        return self._frames

    def __next__(self) -> Frame:
        return next(self._frames)

    def record_batches(self) -> Iterator[RecordBatch] | None:
        """The rest of the file as :class:`RecordBatch` chunks; None once frame iteration has started.

        The two views read the same buffer and cannot be mixed. The batches
        hold exactly the frames iteration would yield (numbers, timestamps,
        bytes, lengths, link types); a batch never mixes link types, so a
        pcapng file whose interfaces differ in link type is cut where the
        link type changes. Errors, truncation and ``bytes_read`` are tracked
        exactly as by iteration.
        """
        if inspect.getgeneratorstate(self._frames) != inspect.GEN_CREATED:  # type: ignore[arg-type]
            return None
        self._frames.close()  # type: ignore[attr-defined]
        if self.format == "pcapng":
            return self._read_pcapng_batches()
        return read_pcap_batches(self, *PCAP_MAGICS[self._magic])

    def _check_header(self) -> None:
        """Validate the file header now so that open_capture() fails fast on a non-capture file."""
        if self.format == "pcap":
            if not self.fill(24):
                raise CaptureFormatError("capture.truncated_header", "pcap file header")
        else:
            if not self.fill(12):
                raise CaptureFormatError("capture.truncated_header", "pcapng section header")
            if section_byte_order(self.buf, 0) is None:
                raise CaptureFormatError("capture.bad_header", "pcapng byte-order magic")

    # -- pcapng ----------------------------------------------------------------------------------

    def _read_pcapng(self) -> Iterator[Frame]:
        order = "<"
        # Per-section interface table: (linktype, seconds per tick, ts offset, snaplen)
        ifaces: list[Interface] = []
        number = 0
        last_ts = 0.0
        u32 = struct.Struct("<I")
        while True:
            if not self.more(12):
                return
            buf, pos = self.buf, self.pos
            if buf[pos : pos + 4] == SHB_MAGIC:
                # A new section may switch byte order; the block length must be read in it.
                section_order = section_byte_order(buf, pos)
                if section_order is None:
                    self.errors["pcapng.bad_section_header"] += 1
                    return
                order = section_order
                u32 = struct.Struct(order + "I")
                ifaces = []
            btype, blen = struct.unpack_from(order + "II", buf, pos)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                self.errors["pcapng.bad_block_length"] += 1
                return
            if not self.more(blen):
                return
            buf, pos = self.buf, self.pos
            if u32.unpack_from(buf, pos + blen - 4)[0] != blen:
                self.errors["pcapng.bad_block_length"] += 1
                return
            self.pos = pos + blen
            body = pos + 8
            body_end = pos + blen - 4
            if btype in (BT_EPB, BT_PB):
                if body_end - body < 20:
                    self.errors["pcapng.bad_packet_block"] += 1
                    continue
                if btype == BT_EPB:
                    ifid, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(order + "IIIII", buf, body)
                else:
                    ifid, _drops, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(
                        order + "HHIIII", buf, body
                    )
                if ifid >= len(ifaces):
                    self.errors["pcapng.unknown_interface"] += 1
                    continue
                start = body + 20
                if start + caplen > body_end:
                    self.errors["pcapng.bad_caplen"] += 1
                    continue
                linktype, tick, offset, _snap = ifaces[ifid]
                last_ts = epb_seconds((ts_hi << 32) | ts_lo, tick, offset)
                number += 1
                yield Frame(number, last_ts, linktype, buf[start : start + caplen], origlen)
            elif btype == BT_SPB:
                if not ifaces:
                    self.errors["pcapng.unknown_interface"] += 1
                    continue
                (origlen,) = u32.unpack_from(buf, body)
                linktype, _tick, _offset, snap = ifaces[0]
                caplen = spb_caplen(origlen, blen, snap)
                number += 1
                # An SPB carries no timestamp; reusing the previous one keeps
                # capture-time timeouts downstream monotonic.
                yield Frame(number, last_ts, linktype, buf[body + 4 : body + 4 + caplen], origlen)
            elif btype == BT_IDB:
                iface = interface_block(order, buf, pos, blen)
                if iface is None:
                    self.errors["pcapng.bad_interface_block"] += 1
                    iface = UNUSABLE_INTERFACE
                ifaces.append(iface)
            # Section headers were handled above; every other block type is skipped.

    def _read_pcapng_batches(self) -> Iterator[RecordBatch]:
        """_read_pcapng's block walk and error handling, RecordBatches instead of one Frame per packet.

        Blocks are walked one by one in Python (a block's length gives the
        next one's offset) and an Enhanced Packet Block contributes only its
        offset; its header fields and timestamp are read with numpy for the
        whole batch (:func:`_pcapng_batch`). After STREAK accepted EPBs of
        one length in a row, the blocks that follow are checked in bulk with
        strided reads (block type, both length fields, interface, caplen
        bound) and taken as long as they agree; the first that differs
        continues the walk. Obsolete Packet Blocks and Simple Packet Blocks
        are rare and decoded in Python. A batch is cut where the packets'
        link type changes and at a section header (its byte order and
        interface table may differ); else there is one batch per chunk read.
        """
        order = "<"
        # Per-section interface table, as _read_pcapng's: (linktype, seconds per tick, ts offset, snaplen)
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
            buf = self.buf
            pos = self.pos
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
                        self.errors["pcapng.bad_packet_block"] += 1
                        pos = stop
                        continue
                    ifid, caplen = epb_check(buf, pos + 8)
                    if ifid >= len(if_lt):
                        self.errors["pcapng.unknown_interface"] += 1
                        pos = stop
                        continue
                    if caplen > blen - 32:
                        self.errors["pcapng.bad_caplen"] += 1
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
                            self.errors["pcapng.bad_packet_block"] += 1
                            pos = stop
                            continue
                        ifid, _drops, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(
                            order + "HHIIII", buf, pos + 8
                        )
                        if ifid >= len(ifaces):
                            self.errors["pcapng.unknown_interface"] += 1
                            pos = stop
                            continue
                        if caplen > blen - 32:
                            self.errors["pcapng.bad_caplen"] += 1
                            pos = stop
                            continue
                        linktype, tick, offset, _snap = ifaces[ifid]
                        ts = epb_seconds((ts_hi << 32) | ts_lo, tick, offset)
                        start = pos + 28
                    else:
                        if not ifaces:
                            self.errors["pcapng.unknown_interface"] += 1
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
                        self.errors["pcapng.bad_interface_block"] += 1
                        iface = UNUSABLE_INTERFACE
                    ifaces.append(iface)
                    if_lt.append(iface[0])
                    lt_table = None
                # Every other block type is skipped.
                pos = stop
            self.pos = pos
            if seg_lt is not None:
                batch = _pcapng_batch(
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
                self.errors[fail] += 1
                return
            if cut:
                continue  # the same buffer, from the record that starts the next batch
            if last_at >= 0:
                last_ts = epb_timestamp(order, buf, last_at, ifaces)
                last_at = -1
            if not self.more(need, capture_stream.BATCH_CHUNK):
                return


def _pcapng_batch(
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
    float64, the operations and roundings of _read_pcapng's Python floats,
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


def open_capture(path: str | os.PathLike[str]) -> CaptureFile:
    """Open a pcap/pcapng (optionally gzip-compressed) file; raises CaptureFormatError if it is neither."""
    return CaptureFile(path)
