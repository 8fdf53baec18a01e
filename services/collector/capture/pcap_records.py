"""Classic pcap: the file header and the records after it, as Frames or as RecordBatches.

Two readers of one framing: the frame reader yields one :class:`Frame` per record for
consumers that want packets; the batch reader walks only the record lengths in Python
and reads every other header field of a chunk with numpy, which is what makes reading
a multi-GB capture cheap. Both stop at the first record whose length is impossible
(``pcap.bad_caplen``: the file cannot be resynchronised after it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from callqual.collector.capture import capture_stream
from callqual.collector.capture.capture_stream import MAX_RECORD, STREAK, CaptureStream
from callqual.collector.packet import Frame, RecordBatch

__all__ = ["PCAP_MAGICS", "PcapVariant", "read_pcap_batches", "read_pcap_frames"]

#: Share of records the same size as the one before, in a chunk, from which the next chunk's walk
#: looks for runs: 0.99 on the clean benchmark capture, 0.6 on the realistic one (runs of 2-3).
RUNS_PAY = 0.8


class PcapVariant(NamedTuple):
    """What a classic pcap file's magic number says about how to read the rest of it."""

    order: str  #: struct byte order of every header field
    unit: float  #: seconds per sub-second timestamp unit (µs or ns)
    record_header: int  #: bytes of header before each record's data


#: The classic pcap variants by the magic bytes that start the file.
PCAP_MAGICS: dict[bytes, PcapVariant] = {
    b"\xd4\xc3\xb2\xa1": PcapVariant("<", 1e-6, 16),
    b"\xa1\xb2\xc3\xd4": PcapVariant(">", 1e-6, 16),
    b"\x4d\x3c\xb2\xa1": PcapVariant("<", 1e-9, 16),
    b"\xa1\xb2\x3c\x4d": PcapVariant(">", 1e-9, 16),
    # Alexey Kuznetzov's patched libpcap: 8 more bytes per record (ifindex, protocol, pkt_type)
    b"\x34\xcd\xb2\xa1": PcapVariant("<", 1e-6, 24),
    b"\xa1\xb2\xcd\x34": PcapVariant(">", 1e-6, 24),
}


def _file_header(src: CaptureStream, order: str) -> tuple[int, int]:
    """Read the 24-byte file header at ``src.pos``: the link type and the largest believable caplen."""
    hdr = struct.unpack_from(order + "IHHiIII", src.buf, src.pos)
    snaplen, linktype = hdr[5], hdr[6] & 0x03FFFFFF  # upper bits carry FCS information
    src.pos += 24
    return linktype, max(262144, snaplen if snaplen < MAX_RECORD else 0)


def read_pcap_frames(src: CaptureStream, order: str, unit: float, rec_size: int) -> Iterator[Frame]:
    """The records after the file header at ``src.pos``, one :class:`Frame` each."""
    linktype, max_caplen = _file_header(src, order)
    rec = struct.Struct(order + "IIII")
    unpack = rec.unpack_from
    frame = Frame
    number = 0
    while True:
        buf = src.buf
        pos = src.pos
        end = len(buf)
        # Inner loop works on locals over the current chunk; it leaves only to refill.
        while pos + rec_size <= end:
            sec, sub, caplen, origlen = unpack(buf, pos)
            start = pos + rec_size
            stop = start + caplen
            if stop > end:
                break
            if caplen > max_caplen:
                src.errors["pcap.bad_caplen"] += 1
                src.pos = pos
                return
            number += 1
            pos = stop
            yield frame(number, sec + sub * unit, linktype, buf[start:stop], origlen)
        src.pos = pos
        if pos + rec_size <= end:
            (caplen,) = struct.unpack_from(order + "I", buf, pos + 8)
            if caplen > max_caplen:
                src.errors["pcap.bad_caplen"] += 1
                return
            need = rec_size + caplen
        else:
            need = rec_size
        if not src.more(need):
            return


def read_pcap_batches(src: CaptureStream, order: str, unit: float, rec_size: int) -> Iterator[RecordBatch]:
    """read_pcap_frames's framing and error handling: one RecordBatch per chunk, not one Frame per record.

    The only per-record Python work left is the walk from one record
    header to the next (a record's length gives the next one's offset);
    every other header field is read for the whole chunk with numpy.
    """
    linktype, max_caplen = _file_header(src, order)
    #: a record's caplen, read from its header's offset
    caplen_at = struct.Struct(order + "8xI").unpack_from
    u32 = np.dtype(np.uint32).newbyteorder("<" if order == "<" else ">")
    number = 0
    runs_pay = True  # whether to look for runs of one size (see RUNS_PAY)
    while True:
        buf = src.buf
        pos = src.pos
        end = len(buf) - rec_size
        limit = len(buf)
        starts: list[int] = []  # record offsets walked one by one, since the last run
        runs: list[np.ndarray] = []  # every offset so far, in order, as arrays
        keep = starts.append
        bad = False
        last = -1  # the previous record's caplen
        streak = 0
        # The per-record loop is the hot spot where sizes vary (mixed codecs): as few
        # operations as possible per record. A caplen over max_caplen is caught here
        # only when the record runs past the chunk; one that fits is found in bulk below.
        # Where the previous chunk's sizes varied too much for runs, even the run
        # bookkeeping is left out (a quarter of the walk on the realistic benchmark).
        while not runs_pay and pos <= end:
            (caplen,) = caplen_at(buf, pos)
            stop = pos + rec_size + caplen
            if stop > limit:
                bad = caplen > max_caplen
                break
            keep(pos)
            pos = stop
        while runs_pay and pos <= end:
            (caplen,) = caplen_at(buf, pos)
            stop = pos + rec_size + caplen
            if stop > limit:
                bad = caplen > max_caplen
                break
            keep(pos)
            if caplen != last:
                last = caplen
                streak = 0
                pos = stop
                continue
            streak += 1
            if streak >= STREAK:
                # Records of one size in a row (RTP of one codec): check the length
                # field of the next ones in one strided numpy read, and take as many
                # as agree; the first that differs continues the walk above.
                # Windows that grow 4x: a run is typically a few hundred records
                # (until an RTCP or SIP record), far shorter than the chunk.
                size = rec_size + caplen
                window = 256
                while (count := min(window, (limit - stop) // size)) > 0:
                    lengths = np.ndarray((count,), u32, buf, stop + 8, (size,))
                    differ = lengths != caplen
                    taken = int(differ.argmax()) if differ.any() else count
                    if taken:
                        if starts:
                            runs.append(np.array(starts, dtype=np.int64))
                            starts = []
                            keep = starts.append
                        runs.append(np.arange(stop, stop + taken * size, size, dtype=np.int64))
                        stop += taken * size
                    if taken < count:
                        break
                    window *= 4
                streak = 0
            pos = stop
        src.pos = pos
        if starts:
            runs.append(np.array(starts, dtype=np.int64))
        if runs:
            at = runs[0] if len(runs) == 1 else np.concatenate(runs)
            # Every record header as one 16-byte element of an overlapping (stride 1) view:
            # one gather of n elements, not 16n byte indices.
            records = np.ndarray((len(buf) - 15,), "V16", buf, 0, (1,))[at]
            heads = records.view(u32).reshape(-1, 4).astype(np.int64)
            caplens = heads[:, 2]
            runs_pay = len(at) < 2 or int(np.count_nonzero(caplens[1:] == caplens[:-1])) >= RUNS_PAY * len(at)
            over = np.flatnonzero(caplens > max_caplen)
            if len(over):
                # Impossible framing: stop at the first such record, as the frame reader does.
                src.pos = int(at[over[0]])
                at = at[: over[0]]
                heads = heads[: over[0]]
                bad = True
        if runs and len(at):
            yield RecordBatch(
                buf,
                linktype,
                number + 1,
                at + rec_size,
                heads[:, 2],
                heads[:, 3],
                heads[:, 0] + heads[:, 1] * unit,
            )
            number += len(at)
        if bad:
            src.errors["pcap.bad_caplen"] += 1
            return
        need = rec_size + caplen_at(buf, pos)[0] if pos <= end else rec_size
        if not src.more(need, capture_stream.BATCH_CHUNK):
            return
