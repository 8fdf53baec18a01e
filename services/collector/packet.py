"""The values that flow through the collector's decoding stages (``Payload`` has its own module)."""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callqual.collector.payload import Payload

__all__ = ["Frame", "Payload", "RecordBatch"]


@dataclass(slots=True)
class Frame:
    """One captured frame as a capture source yields it."""

    number: int  #: 1-based frame number in the capture (Wireshark's frame.number)
    ts: float  #: capture time, seconds since the epoch
    linktype: int  #: DLT/LINKTYPE_* value of the interface it was captured on
    data: bytes
    orig_len: int  #: length on the wire (>= len(data) when the snaplen cut it)


@dataclass(slots=True, frozen=True)
class RecordBatch:
    """Consecutive records of one link type, cut from one read chunk or live ring batch, as numpy columns.

    The bulk alternative to iterating :class:`Frame` values: a consumer that
    can work on whole arrays (``Collector.run``) reads the fields it needs
    for every record at once with numpy fancy indexing on ``buf`` and builds
    a Frame (:meth:`frame`) only for the records it cannot handle in bulk.
    Record ``i`` is frame number ``first_number + i``; its captured bytes
    are ``buf[start[i]:start[i] + caplen[i]]``. A batch holds one chunk of
    the file (8 MiB at most) or of the live ring, so memory stays bounded as
    long as the consumer drops each batch before taking the next.
    """

    buf: bytes
    linktype: int
    first_number: int
    start: npt.NDArray[np.int64]
    caplen: npt.NDArray[np.int64]
    orig_len: npt.NDArray[np.int64]
    ts: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.start)

    def frame(self, i: int) -> Frame:
        """Record ``i`` as the Frame the iterator would have yielded for it."""
        s = int(self.start[i])
        return Frame(
            self.first_number + i,
            float(self.ts[i]),
            self.linktype,
            self.buf[s : s + int(self.caplen[i])],
            int(self.orig_len[i]),
        )
