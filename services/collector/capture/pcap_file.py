"""Reading pcap and pcapng capture files into :class:`Frame` values.

This is an adapter (it does file I/O); everything downstream of it is pure.
The parser is our own rather than dpkt's because dpkt.pcapng applies one
timestamp resolution to the whole file and stops at the first unknown
situation, while a capture taken on several interfaces (``-i any`` on some
systems, dumpcap with several ``-i``) carries a link type and a timestamp
resolution per Interface Description Block and must be honoured per frame.

The file is read in large chunks and records are cut with ``struct`` at fixed
offsets, which keeps the per-frame cost at roughly one microsecond. This module
only opens the file and tells the format; the pieces, one job each:
``capture_stream`` (the buffer and its refilling, gzip), ``pcap_records``
(classic pcap), ``pcapng_blocks`` (what both pcapng readers decode alike),
``pcapng_frames`` and ``pcapng_batches`` (one Frame per packet, or RecordBatches).

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
from collections.abc import Iterator
from types import TracebackType

from callqual.collector.capture.capture_stream import CaptureStream
from callqual.collector.capture.other_formats import MAGIC_BYTES_NEEDED, describe_other_format
from callqual.collector.capture.pcap_records import PCAP_MAGICS, read_pcap_batches, read_pcap_frames
from callqual.collector.capture.pcapng_batches import read_pcapng_batches
from callqual.collector.capture.pcapng_blocks import SHB_MAGIC, section_byte_order
from callqual.collector.capture.pcapng_frames import read_pcapng_frames
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
                self._frames: Iterator[Frame] = read_pcapng_frames(self)
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
            return read_pcapng_batches(self)
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


def open_capture(path: str | os.PathLike[str]) -> CaptureFile:
    """Open a pcap/pcapng (optionally gzip-compressed) file; raises CaptureFormatError if it is neither."""
    return CaptureFile(path)
