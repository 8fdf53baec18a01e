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

import gzip
import inspect
import os
import struct
from collections import Counter
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO

import numpy as np

from callqual.collector.errors import CaptureFormatError
from callqual.collector.packet import Frame, RecordBatch

__all__ = ["CaptureFile", "RecordBatch", "open_capture"]

_CHUNK = 1 << 22  # 4 MiB: large enough that refills are rare, small enough to stream huge files
#: Read size of the batch reader (about 9,000 RTP records): larger batches amortise the
#: consumer's per-batch numpy set-up, but past a few MiB the record walk and the gathers
#: fall out of the CPU caches (measured on the load capture: 1-2 MiB best, 16 MiB 3x slower).
_BATCH_CHUNK = 1 << 23
_MAX_RECORD = 1 << 26  # 64 MiB: a larger record length can only be corruption
#: Records of one size in a row after which the batch reader checks the following ones
#: in bulk (see CaptureFile._read_pcap_batches).
_STREAK = 4

# Classic pcap magic numbers as read little-endian from the first 4 bytes.
_PCAP_MAGICS: dict[bytes, tuple[str, float, int]] = {
    # magic bytes on disk: (byte order, seconds per sub-second unit, record header size)
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9, 16),
    # Alexey Kuznetzov's patched libpcap: 8 more bytes per record (ifindex, protocol, pkt_type)
    b"\x34\xcd\xb2\xa1": ("<", 1e-6, 24),
    b"\xa1\xb2\xcd\x34": (">", 1e-6, 24),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_GZIP_MAGIC = b"\x1f\x8b"

_BT_IDB = 1
_BT_PB = 2  # obsolete Packet Block; Wireshark still reads it, so do we
_BT_SPB = 3
_BT_EPB = 6
_SHB_TYPE = 0x0A0D0D0A
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14


class CaptureFile:
    """An open capture file: a context manager and an iterator of :class:`Frame`.

    ``bytes_read`` and ``size`` exist for progress reporting; both count bytes
    of the file on disk (compressed bytes for a ``.gz`` capture).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        self.bytes_read = 0
        self.truncated = False
        self.errors: Counter[str] = Counter()
        self.format = ""  #: 'pcap' or 'pcapng'
        self._raw: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        self._fh: BinaryIO = self._raw
        try:
            head = self._raw.read(4)
            if head[:2] == _GZIP_MAGIC:
                self._raw.seek(0)
                self._fh = gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[assignment]
                head = self._safe_read(4)
            self._buf = head
            self._pos = 0
            if not head:
                raise CaptureFormatError("capture.empty", self.path)
            if len(head) < 4:
                raise CaptureFormatError("capture.unknown_format", "shorter than a magic number")
            if head == _PCAPNG_SHB:
                self.format = "pcapng"
                self._frames: Iterator[Frame] = self._read_pcapng()
            elif head in _PCAP_MAGICS:
                self.format = "pcap"
                self._magic = head
                self._frames = self._read_pcap(*_PCAP_MAGICS[head])
            else:
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
        """The rest of a classic pcap file as :class:`RecordBatch` chunks, else None.

        None for pcapng (interfaces, block types and per-interface clocks are
        kept on the per-frame path) and once frame iteration has started: the
        two views read the same buffer and cannot be mixed. Errors,
        truncation and ``bytes_read`` are tracked exactly as by iteration.
        """
        if self.format != "pcap" or inspect.getgeneratorstate(self._frames) != inspect.GEN_CREATED:  # type: ignore[arg-type]
            return None
        self._frames.close()  # type: ignore[attr-defined]
        return self._read_pcap_batches(*_PCAP_MAGICS[self._magic])

    def close(self) -> None:
        if self._fh is not self._raw:
            self._fh.close()
        self._raw.close()

    # -- buffer management -----------------------------------------------------------------------

    def _safe_read(self, n: int) -> bytes:
        """Read, turning a damaged gzip stream into a truncation instead of an exception."""
        try:
            data = self._fh.read(n)
        except (OSError, EOFError, gzip.BadGzipFile):
            self.truncated = True
            data = b""
        self.bytes_read = self._raw.tell() if not self._raw.closed else self.bytes_read
        return data

    def _fill(self, need: int, chunk: int = _CHUNK) -> bool:
        """Make at least ``need`` bytes available from ``_pos``, reading ``chunk`` at a time; False at EOF."""
        if len(self._buf) - self._pos >= need:
            # The common case, per block of a pcapng file: no copy of the rest of the chunk.
            return True
        buf = self._buf[self._pos :]
        parts = [buf]
        have = len(buf)
        while have < need:
            more = self._safe_read(max(chunk, need - have))
            if not more:
                break
            parts.append(more)
            have += len(more)
        self._buf = b"".join(parts)
        self._pos = 0
        return have >= need

    def _check_header(self) -> None:
        """Validate the file header now so that open_capture() fails fast on a non-capture file."""
        if self.format == "pcap":
            if not self._fill(24):
                raise CaptureFormatError("capture.truncated_header", "pcap file header")
        else:
            if not self._fill(12):
                raise CaptureFormatError("capture.truncated_header", "pcapng section header")
            for order in "<>":
                (magic,) = struct.unpack_from(order + "I", self._buf, 8)
                if magic == _BYTE_ORDER_MAGIC:
                    break
            else:
                raise CaptureFormatError("capture.bad_header", "pcapng byte-order magic")

    # -- classic pcap ----------------------------------------------------------------------------

    def _read_pcap(self, order: str, unit: float, rec_size: int) -> Iterator[Frame]:
        hdr = struct.unpack_from(order + "IHHiIII", self._buf, self._pos)
        snaplen, linktype = hdr[5], hdr[6] & 0x03FFFFFF  # upper bits carry FCS information
        max_caplen = max(262144, snaplen if snaplen < _MAX_RECORD else 0)
        self._pos += 24
        rec = struct.Struct(order + "IIII")
        unpack = rec.unpack_from
        frame = Frame
        number = 0
        while True:
            buf = self._buf
            pos = self._pos
            end = len(buf)
            # Inner loop works on locals over the current chunk; it leaves only to refill.
            while pos + rec_size <= end:
                sec, sub, caplen, origlen = unpack(buf, pos)
                start = pos + rec_size
                stop = start + caplen
                if stop > end:
                    break
                if caplen > max_caplen:
                    self.errors["pcap.bad_caplen"] += 1
                    self._pos = pos
                    return
                number += 1
                pos = stop
                yield frame(number, sec + sub * unit, linktype, buf[start:stop], origlen)
            self._pos = pos
            if pos + rec_size <= end:
                (caplen,) = struct.unpack_from(order + "I", buf, pos + 8)
                if caplen > max_caplen:
                    self.errors["pcap.bad_caplen"] += 1
                    return
                need = rec_size + caplen
            else:
                need = rec_size
            if not self._fill(need):
                if len(self._buf) > self._pos:
                    self.truncated = True
                return

    def _read_pcap_batches(self, order: str, unit: float, rec_size: int) -> Iterator[RecordBatch]:
        """_read_pcap's framing and error handling, one RecordBatch per chunk instead of one Frame per record.

        The only per-record Python work left is the walk from one record
        header to the next (a record's length gives the next one's offset);
        every other header field is read for the whole chunk with numpy.
        """
        hdr = struct.unpack_from(order + "IHHiIII", self._buf, self._pos)
        snaplen, linktype = hdr[5], hdr[6] & 0x03FFFFFF
        max_caplen = max(262144, snaplen if snaplen < _MAX_RECORD else 0)
        self._pos += 24
        caplen_at = struct.Struct(order + "I").unpack_from
        u32 = np.dtype(np.uint32).newbyteorder("<" if order == "<" else ">")
        size_limit = rec_size + max_caplen
        number = 0
        while True:
            buf = self._buf
            pos = self._pos
            end = len(buf) - rec_size
            starts: list[int] = []  # record offsets walked one by one, since the last run
            runs: list[np.ndarray] = []  # every offset so far, in order, as arrays
            keep = starts.append
            bad = False
            size = 0
            streak = 0
            while pos <= end:
                stop = pos + rec_size + caplen_at(buf, pos + 8)[0]
                if stop - pos > size_limit:
                    bad = True
                    break
                if stop > end + rec_size:
                    break
                keep(pos)
                if stop - pos == size:
                    streak += 1
                    if streak >= _STREAK:
                        # Records of one size in a row (RTP of one codec): check the length
                        # field of the next ones in one strided numpy read, and take as many
                        # as agree; the first that differs continues the walk above.
                        # Windows that grow 4x: a run is typically a few hundred records
                        # (until an RTCP or SIP record), far shorter than the chunk.
                        window = 256
                        while (count := min(window, (len(buf) - stop) // size)) > 0:
                            lengths = np.ndarray((count,), u32, buf, stop + 8, (size,))
                            differ = lengths != size - rec_size
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
                else:
                    size = stop - pos
                    streak = 0
                pos = stop
            self._pos = pos
            if starts:
                runs.append(np.array(starts, dtype=np.int64))
            if runs:
                at = runs[0] if len(runs) == 1 else np.concatenate(runs)
                # Every record header as one 16-byte element of an overlapping (stride 1) view:
                # one gather of n elements, not 16n byte indices.
                records = np.ndarray((len(buf) - 15,), "V16", buf, 0, (1,))[at]
                heads = records.view(u32).reshape(-1, 4).astype(np.int64)
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
                self.errors["pcap.bad_caplen"] += 1
                return
            need = rec_size + caplen_at(buf, pos + 8)[0] if pos <= end else rec_size
            if not self._fill(need, _BATCH_CHUNK):
                if len(self._buf) > self._pos:
                    self.truncated = True
                return

    # -- pcapng ----------------------------------------------------------------------------------

    def _read_pcapng(self) -> Iterator[Frame]:
        order = "<"
        # Per-section interface table: (linktype, seconds per tick, ts offset, snaplen)
        ifaces: list[tuple[int, float, int, int]] = []
        number = 0
        last_ts = 0.0
        u32 = struct.Struct("<I")
        while True:
            if not self._fill(12):
                if len(self._buf) > self._pos:
                    self.truncated = True
                return
            buf, pos = self._buf, self._pos
            if buf[pos : pos + 4] == _PCAPNG_SHB:
                # A new section may switch byte order; the block length must be read in it.
                order = "<"
                if struct.unpack_from("<I", buf, pos + 8)[0] != _BYTE_ORDER_MAGIC:
                    order = ">"
                    if struct.unpack_from(">I", buf, pos + 8)[0] != _BYTE_ORDER_MAGIC:
                        self.errors["pcapng.bad_section_header"] += 1
                        return
                u32 = struct.Struct(order + "I")
                ifaces = []
            btype, blen = struct.unpack_from(order + "II", buf, pos)
            if blen < 12 or blen % 4 or blen > _MAX_RECORD:
                self.errors["pcapng.bad_block_length"] += 1
                return
            if not self._fill(blen):
                self.truncated = True
                return
            buf, pos = self._buf, self._pos
            if u32.unpack_from(buf, pos + blen - 4)[0] != blen:
                self.errors["pcapng.bad_block_length"] += 1
                return
            self._pos = pos + blen
            body = pos + 8
            body_end = pos + blen - 4
            if btype in (_BT_EPB, _BT_PB):
                if body_end - body < 20:
                    self.errors["pcapng.bad_packet_block"] += 1
                    continue
                if btype == _BT_EPB:
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
                last_ts = offset + ((ts_hi << 32) | ts_lo) * tick
                number += 1
                yield Frame(number, last_ts, linktype, buf[start : start + caplen], origlen)
            elif btype == _BT_SPB:
                if not ifaces:
                    self.errors["pcapng.unknown_interface"] += 1
                    continue
                (origlen,) = u32.unpack_from(buf, body)
                linktype, _tick, _offset, snap = ifaces[0]
                caplen = min(origlen, body_end - body - 4)
                if snap:
                    caplen = min(caplen, snap)
                number += 1
                # An SPB carries no timestamp; reusing the previous one keeps
                # capture-time timeouts downstream monotonic.
                yield Frame(number, last_ts, linktype, buf[body + 4 : body + 4 + caplen], origlen)
            elif btype == _BT_IDB:
                if body_end - body < 8:
                    self.errors["pcapng.bad_interface_block"] += 1
                    ifaces.append((-1, 1e-6, 0, 0))  # keep interface ids aligned
                    continue
                linktype, _res, snaplen = struct.unpack_from(order + "HHI", buf, body)
                tick, ts_offset = self._idb_options(order, buf, body + 8, body_end)
                ifaces.append((linktype, tick, ts_offset, snaplen))
            # Section headers were handled above; every other block type is skipped.

    def _idb_options(self, order: str, buf: bytes, pos: int, end: int) -> tuple[float, int]:
        tick = 1e-6
        ts_offset = 0
        while pos + 4 <= end:
            code, olen = struct.unpack_from(order + "HH", buf, pos)
            pos += 4
            if code == 0 or pos + olen > end:
                break
            if code == _OPT_IF_TSRESOL and olen >= 1:
                v = buf[pos]
                tick = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
            elif code == _OPT_IF_TSOFFSET and olen >= 8:
                (ts_offset,) = struct.unpack_from(order + "q", buf, pos)
            pos += (olen + 3) & ~3
        return tick, ts_offset


def open_capture(path: str | os.PathLike[str]) -> CaptureFile:
    """Open a pcap/pcapng (optionally gzip-compressed) file; raises CaptureFormatError if it is neither."""
    return CaptureFile(path)
