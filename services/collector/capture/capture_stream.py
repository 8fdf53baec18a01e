"""The bytes of a capture file, opened (gzip or not) and read in large chunks.

Both formats' readers cut records out of one buffer at fixed offsets with
``struct``; this is that buffer and its refilling, kept apart from the
formats so that the pcap and pcapng readers share one notion of "the file
ended inside a record" (``truncated``) and of damage counted in ``errors``.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from typing import BinaryIO

__all__ = ["BATCH_CHUNK", "CHUNK", "MAX_RECORD", "STREAK", "CaptureStream"]

CHUNK = 1 << 22  # 4 MiB: large enough that refills are rare, small enough to stream huge files
#: Read size of the batch readers (about 9,000 RTP records): larger batches amortise the
#: consumer's per-batch numpy set-up, but past a few MiB the record walk and the gathers
#: fall out of the CPU caches (measured on the load capture: 1-2 MiB best, 16 MiB 3x slower).
#: Read as ``capture_stream.BATCH_CHUNK`` at each refill, so a test can make it small.
BATCH_CHUNK = 1 << 23
MAX_RECORD = 1 << 26  # 64 MiB: a larger record length can only be corruption
#: Records of one size in a row after which the batch readers check the following ones
#: in bulk. 16, not 4: where codecs interleave (record sizes vary), short runs made a numpy
#: check that took a handful of records; reading the realistic 1.19 M-packet benchmark
#: capture took 0.57 s at 4, 0.36 s at 16 (as pcapng 1.40 / 0.69 s), the clean one 0.13 / 0.12 s.
STREAK = 16
_GZIP_MAGIC = b"\x1f\x8b"


class _Prefixed:
    """A pipe's bytes with the ones already read to tell the format put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(n)
        if n < 0:
            data, self._head = self._head + self._rest.read(), b""
            return data
        data, self._head = self._head[:n], self._head[n:]
        return data


class CaptureStream:
    """An open capture file's bytes: ``buf`` holds the current chunk, ``pos`` the reader's offset in it.

    ``bytes_read`` and ``size`` exist for progress reporting; both count bytes
    of the file on disk (compressed bytes for a ``.gz`` capture).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        self.bytes_read = 0
        self.truncated = False
        self.errors: Counter[str] = Counter()
        self._raw: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        self._fh: BinaryIO = self._raw
        #: a regular file; a pipe (``tcpdump -w - | callqual analyze -``) is read once, in order
        self.seekable = self._raw.seekable()
        try:
            head = self._raw.read(4)
            if head[:2] == _GZIP_MAGIC:
                compressed: BinaryIO = self._raw
                if self.seekable:
                    self._raw.seek(0)
                else:
                    compressed = _Prefixed(head, self._raw)  # type: ignore[assignment]
                self._fh = gzip.GzipFile(fileobj=compressed, mode="rb")  # type: ignore[assignment]
                head = self.read(4)
            elif not self.seekable:
                self.bytes_read = len(head)
        except BaseException:
            self.close()
            raise
        self.buf = head
        self.pos = 0
        #: a plain file read through _raw: fill may seek back over the unread tail
        self._rereadable = self._fh is self._raw and self.seekable

    def close(self) -> None:
        if self._fh is not self._raw:
            self._fh.close()
        self._raw.close()

    def read(self, n: int) -> bytes:
        """Read, turning a damaged gzip stream into a truncation instead of an exception."""
        try:
            data = self._fh.read(n)
        except (OSError, EOFError, gzip.BadGzipFile):
            self.truncated = True
            data = b""
        if not self.seekable:
            self.bytes_read += len(data)
        elif not self._raw.closed:
            self.bytes_read = self._raw.tell()
        return data

    def fill(self, need: int, chunk: int = CHUNK) -> bool:
        """Make at least ``need`` bytes available from ``pos``, reading ``chunk`` at a time; False at EOF."""
        if len(self.buf) - self.pos >= need:
            # The common case, per block of a pcapng file: no copy of the rest of the chunk.
            return True
        return self._refill(need, chunk)

    def more(self, need: int, chunk: int = CHUNK) -> bool:
        """:meth:`fill` for a reader that needs the next record: False at EOF, ``truncated`` if inside one."""
        if len(self.buf) - self.pos >= need or self._refill(need, chunk):
            return True
        if len(self.buf) > self.pos:
            self.truncated = True
        return False

    def _refill(self, need: int, chunk: int) -> bool:
        tail = len(self.buf) - self.pos
        if tail and self._rereadable:
            # Read the unused tail again with the next chunk rather than joining the two:
            # joining copies the whole chunk a second time (8 MiB per batch, ~5 % of a run).
            self._raw.seek(-tail, os.SEEK_CUR)
            self.buf = self.read(max(chunk, need))
            self.pos = 0
            return len(self.buf) >= need
        buf = self.buf[self.pos :]
        parts = [buf]
        have = len(buf)
        while have < need:
            more = self.read(max(chunk, need - have))
            if not more:
                break
            parts.append(more)
            have += len(more)
        self.buf = b"".join(parts)
        self.pos = 0
        return have >= need
