"""``callqual analyze --split``: the collector in a child process, the detector in this one.

Why: on signalling the two halves cost about the same order (issue 14: ~30 us
a message to decode, parse and build the event, ~50 to run the dialogs, rules
and records), so on two cores the capture is analysed in about the time of
the slower half. The child is forked with the capture already open and runs
the collector exactly as the embedded pipeline does; its events, and the
times of its ticks (after which the embedded pipeline judges the calls still
up), come back through a pipe in order, so the detector sees the very same
sequence and the report is byte-identical (``tests/pipeline/test_split.py``).

Hand-over: batches of ``BATCH`` items as field dicts through ``marshal``
(``event_codec``), each model rebuilt unvalidated here. The pipe is the bound:
the child blocks while the detector is behind, so at most a pipe buffer and
one batch are in flight. Each batch also carries how far the child has read,
for the progress bar.
"""

import contextlib
import fcntl
import multiprocessing
import pickle
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from callqual.collector.capture.pcap_file import CaptureFile
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.pipeline.collector_totals import CollectorTotals
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.event_codec import CodecError, Item, decode_batch, encode_batch

__all__ = ["BATCH", "SplitPipelineError", "run_split"]

#: Items (events or tick times) per message through the pipe: large enough that encoding and
#: the system calls are paid per batch, small enough that the detector starts at once.
BATCH = 512

#: The child's last message (a pickled :class:`_End`) and its failure (a traceback), told
#: apart from a batch (``event_codec``: b"M" or b"P") by the first byte.
_END = b"E"
_FAILED = b"F"

#: Linux ``F_SETPIPE_SZ``: a 1 MiB pipe holds two batches, so the child writes a batch in one
#: system call and the parent reads it in one (64 KiB pipes: ~10 wake-ups a batch).
_F_SETPIPE_SZ = 1031
_PIPE_BYTES = 1 << 20

#: Progress callback: bytes of the capture read so far by the child.
Progress = Callable[[int], None]


class SplitPipelineError(RuntimeError):
    """The collector process failed (its traceback is the message), died, or sent garbage."""


@dataclass(frozen=True, slots=True)
class _End:
    """What the report needs from the collector and the capture, after the last batch."""

    totals: CollectorTotals
    truncated: bool
    reader_errors: Counter[str]


def _collect(capture: CaptureFile, config: CollectorConfig, conn: Connection) -> None:
    """The child: run the collector over the capture, sending events and tick times in order."""
    try:
        pending: list[Item] = []

        def emit(event: Item) -> None:
            pending.append(event)
            if len(pending) >= BATCH:
                conn.send_bytes(encode_batch(pending, capture.bytes_read))
                pending.clear()

        collector = Collector(emit, config, on_tick=pending.append)
        collector.run(capture)
        collector.finish()
        if pending:
            conn.send_bytes(encode_batch(pending, capture.bytes_read))
        end = _End(CollectorTotals.of(collector), capture.truncated, Counter(capture.errors))
        conn.send_bytes(_END + pickle.dumps(end, protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException:  # the parent reports it; a child must not die silently
        conn.send_bytes(_FAILED + traceback.format_exc().encode())
    finally:
        conn.close()


def _widen(conn: Connection) -> None:
    """A bigger pipe buffer where Linux allows one (else the default 64 KiB: slower, still correct)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(conn.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)


def run_split(
    pipeline: EmbeddedPipeline, capture: CaptureFile, progress: Progress | None = None
) -> tuple[bool, Counter[str]]:
    """Run ``capture`` through ``pipeline`` with its collector in a forked child.

    Returns the capture's (truncated, reader errors), as the child's reader
    saw them. The caller then finishes and reports as usual; the
    pipeline's own collector is never fed, its totals come from the child.
    """
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    _widen(send)
    child = ctx.Process(
        target=_collect, args=(capture, pipeline.collector.config, send), name="callqual-collector"
    )
    child.start()
    send.close()
    run_events = pipeline.run_events
    finished = False
    try:
        while True:
            try:
                data = receive.recv_bytes()
            except EOFError:
                child.join()
                raise SplitPipelineError(f"the collector process died (exit code {child.exitcode})") from None
            tag = data[:1]
            if tag == _END:
                end = pickle.loads(data[1:])
                pipeline.adopt_collector_totals(end.totals)
                finished = True
                return end.truncated, end.reader_errors
            if tag == _FAILED:
                failure = data[1:].decode(errors="replace")
                raise SplitPipelineError(f"the collector process failed:\n{failure}")
            try:
                bytes_read, items = decode_batch(data)
            except CodecError as exc:
                raise SplitPipelineError(f"the collector process sent an unreadable batch: {exc}") from None
            run_events(items)
            if progress is not None:
                progress(bytes_read)
    finally:
        if not finished and child.is_alive():
            child.terminate()  # we failed (or were interrupted): the child has no one to send to
        receive.close()
        child.join()
