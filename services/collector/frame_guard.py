"""What the collector does when its own code fails on one frame: count it, log it once, go on.

Captures and mutations from tools we never tested can reach a code path with a
bug in it. One such frame must not end ``callqual analyze`` or kill the
collector service: the failure is counted as ``internal.<ExceptionType>`` beside
the parse errors (so reports and ``callqual_parse_errors_total{reason}`` show
it), logged with its frame number the first time each type occurs (a flood of
one bug must not flood the log), and handed to ``on_failure`` (the service
dead-letters the frame). Exceptions the owner names as fatal (the bus is gone)
still end the run: they are about the sink, not the frame.
"""

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callqual.collector.packet import Frame, RecordBatch

__all__ = ["FailureSink", "FrameFailure", "FrameGuard", "called_from", "locals_of"]

log = logging.getLogger("callqual.collector")

#: The error text kept with a failure (a message can quote a whole payload).
_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class FrameFailure:
    """A frame (or a chunk of records) the collector's code raised on."""

    #: ``internal.<ExceptionType>``, as counted in the collector's errors
    reason: str
    error: str
    #: the frame number; for a chunk, the number of its first record
    frame: int
    ts: float
    linktype: int
    #: the frame's captured bytes (empty for a chunk: its records are fed again one by one)
    data: bytes
    #: records concerned: 1 for a frame, the chunk's length for a chunk
    records: int = 1


FailureSink = Callable[[FrameFailure], None]


class FrameGuard:
    """Counts, logs and passes on the failures of the collector's per-frame and per-chunk paths."""

    def __init__(
        self,
        errors: Counter[str],
        on_failure: FailureSink | None = None,
        fatal: tuple[type[Exception], ...] = (),
    ) -> None:
        self.errors = errors
        self.on_failure = on_failure
        self.fatal = fatal
        self._logged: set[str] = set()

    def frame_failed(self, exc: Exception, frame: Frame) -> None:
        self._failed(exc, FrameFailure("", "", frame.number, frame.ts, frame.linktype, frame.data))

    def batch_failed(self, exc: Exception, batch: RecordBatch) -> None:
        ts = float(batch.ts[0]) if len(batch) else 0.0
        self._failed(exc, FrameFailure("", "", batch.first_number, ts, batch.linktype, b"", len(batch)))

    def failed(self, exc: Exception, frame: int = 0) -> None:
        """A failure outside one frame's handling (the source, a stream's final report)."""
        self._failed(exc, FrameFailure("", "", frame, 0.0, 0, b"", 0))

    def _failed(self, exc: Exception, where: FrameFailure) -> None:
        if isinstance(exc, self.fatal):
            raise exc
        reason = f"internal.{type(exc).__name__}"
        self.errors[reason] += 1
        if reason not in self._logged:
            self._logged.add(reason)
            log.error(
                "collector failed on a frame; counted as %s, going on",
                reason,
                exc_info=exc,
                extra={"reason": reason, "frame": where.frame, "records": where.records},
            )
        if self.on_failure is not None:
            error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
            self.on_failure(
                FrameFailure(reason, error, where.frame, where.ts, where.linktype, where.data, where.records)
            )


# Post-mortem of a failed loop: where it stopped is read from its frame in the traceback,
# so the loop itself carries no bookkeeping (and costs nothing) while nothing fails.


def called_from(exc: BaseException, function: Callable[..., object]) -> str | None:
    """The module of what ``function`` called when ``exc`` passed through it (None: raised in it)."""
    code = getattr(function, "__code__", None)
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code:
        tb = tb.tb_next
    if tb is None or tb.tb_next is None:
        return None
    return str(tb.tb_next.tb_frame.f_globals.get("__name__", ""))


def locals_of(exc: BaseException, function: Callable[..., object]) -> dict[str, Any]:
    """The local variables of ``function``'s frame in ``exc``'s traceback (empty if it is not there)."""
    code = getattr(function, "__code__", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return dict(tb.tb_frame.f_locals)
        tb = tb.tb_next
    return {}
