"""``callqual analyze --split``: the collector in a child process, the detector in this one.

Why: on signalling the two halves cost about the same order (issue 14: ~30 us
a message to decode, parse and build the event, ~50 to run the dialogs, rules
and records), so on two cores the capture is analysed in about the time of
the slower half. The child is forked with the capture already open and runs
the collector exactly as the embedded pipeline does; its events, and the
times of its ticks (after which the embedded pipeline judges the calls still
up), come back through a pipe in order, so the detector sees the very same
sequence and the report is byte-identical (``tests/pipeline/test_split.py``).
The child also runs the relay check and most per-source rules
(``detector/source_rules.py``: they read nothing but the events) and sends
what they said of an event (alerts, or "a relayed copy") just before it, for
the detector's rule engine to record where it would have raised them; the
rules from :data:`KEEP_FROM` on stay here, to even out the two processes.

Hand-over: batches of ``BATCH`` items as field dicts through ``marshal``
(``event_codec``), each model rebuilt unvalidated here (~5 us a message, of
it ~3 in ``marshal.loads``; pickle was ~6.5: ``bench/split_handover.py``).
By default ``analyze`` splits a capture file when two CPUs are ours
(:func:`split_pays`; ``bench/RESULTS.md``, session 5). The pipe is the bound:
the child blocks while the detector is behind, so at most a pipe buffer and
one batch are in flight. Each batch also carries how far the child has read,
for the progress bar. The pipe is widened to :data:`PIPE_BYTES` (two batches) where the
kernel allows: at its default 64 KiB the child blocked in every send until the detector had
read the whole batch, and each process idled while the other had a slow stretch.
"""

import fcntl
import gc
import multiprocessing
import os
import pickle
import resource
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from callqual.collector.capture.pcap_file import CaptureFile
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.detector.source_rules import SourceRules, SourceTotals
from callqual.pipeline.child_emit import Batcher, VerdictsFirst
from callqual.pipeline.collector_totals import CollectorTotals
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.pipeline.event_codec import CodecError, Item, decode_batch, encode_batch
from callqual.schemas import Alert, AnyEvent

__all__ = [
    "BATCH",
    "CHILD_GC_THRESHOLDS",
    "KEEP_FROM",
    "MIN_SPLIT_BYTES",
    "PIPE_BYTES",
    "BatchSender",
    "ChildEnd",
    "SplitPipelineError",
    "receive_all",
    "run_split",
    "split_pays",
    "start_child",
]

#: Items (events or tick times) per message through the pipe: large enough that encoding and
#: the system calls are paid per batch, small enough that the detector starts at once.
BATCH = 512

#: The child's last message (a pickled :class:`_End`) and its failure (a traceback), told
#: apart from a batch (``event_codec``: b"M" or b"P") by the first byte.
_END = b"E"
_FAILED = b"F"

#: Progress callback: bytes of the capture read so far by the child.
Progress = Callable[[int], None]


#: The first source rule (in catalogue order) the detector runs itself; the relay check and
#: the rules before it run in the child. On signalling (bench/out/sip.pcap) the source rules
#: cost the child ~3.9 s of ~8.7 with all of them there, the parent ~6.3 s left: toll_fraud
#: (~29 % of the rules) back here evens the two (bench/RESULTS.md, session 6, rules-child).
KEEP_FROM = "toll_fraud"

#: The pipe's buffer asked of the kernel: two encoded batches of signalling (~0.5 MB each), so
#: that neither process waits on the other's every uneven stretch (bench/RESULTS.md, session 7).
PIPE_BYTES = 1 << 20

#: The child's cyclic-GC thresholds. Its tracked objects grow only while the collector's and the
#: source rules' bounded tables fill (~370,000 objects on bench/out/sip.pcap), and each young
#: collection rescans every survivor since the last: at 50,000 (the throughput setting then; it
#: is 200,000 now) that was ~0.3 s of the child's ~5.5 s CPU for a few hundred cyclic objects
#: found. Cyclic garbage (none is made per message) still goes at this many net allocations.
CHILD_GC_THRESHOLDS = (1_000_000, 20, 100)

#: Below this, a capture is analysed in about the time the fork and the hand-over's start cost.
MIN_SPLIT_BYTES = 1 << 20


def split_pays(capture_bytes: int, workers: int) -> bool:
    """Whether ``analyze`` of a capture file should split by default (``--split`` unset).

    Yes when two CPUs are ours to use (the affinity mask, not the machine's
    count: a container or ``taskset`` may allow one), the capture is not tiny,
    ``--workers`` does not already spread the work, and the platform forks.
    """
    return (
        workers == 1
        and capture_bytes >= MIN_SPLIT_BYTES
        and sys.platform == "linux"
        and len(os.sched_getaffinity(0)) >= 2
    )


class SplitPipelineError(RuntimeError):
    """The collector process failed (its traceback is the message), died, or sent garbage."""


@dataclass(frozen=True, slots=True)
class ChildEnd:
    """The child's last message: what the report needs from the collector and its input."""

    totals: CollectorTotals
    truncated: bool
    reader_errors: Counter[str]
    #: CPU seconds (user + system) the child used: for benchmarks, which only see their own
    cpu_s: float
    #: anything else of the input's (a live capture's ``CaptureStats``)
    detail: object = None
    #: the source rules' flush and counters, when they ran in the child
    source_rules: tuple[list[Alert], SourceTotals] | None = None


class BatchSender:
    """The child's side: items gathered into batches of ``BATCH`` and sent in order.

    The batching is compiled (``child_emit.Batcher``): ``add`` is its method, called once per
    item, so no interpreted frame is paid per message.
    """

    def __init__(self, conn: Connection, position: Callable[[], int]) -> None:
        self.conn = conn
        #: how far the input has been read, sent with each batch (progress)
        self.position = position
        self._batcher = Batcher(self._send, BATCH)
        self.add: Callable[[Item], None] = self._batcher.add
        self.flush: Callable[[], None] = self._batcher.flush

    def _send(self, items: list[Item]) -> None:
        self.conn.send_bytes(encode_batch(items, self.position()))

    def end(self, end: ChildEnd) -> None:
        self.flush()
        self.conn.send_bytes(_END + pickle.dumps(end, protocol=pickle.HIGHEST_PROTOCOL))

    def fail(self) -> None:
        """Send the exception being handled (its traceback), for the parent to report."""
        self.conn.send_bytes(_FAILED + traceback.format_exc().encode())


def child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def source_rules_first(rules: SourceRules, send: Callable[[Item], None]) -> Callable[[AnyEvent], None]:
    """The collector's emit in the child: the source rules' verdict on an observation (if any), then it."""
    return VerdictsFirst(rules, send)


def _collect(capture: CaptureFile, config: CollectorConfig, rules: SourceRules, conn: Connection) -> None:
    """The child: run the collector and the source rules over the capture, sending all in order."""
    gc.freeze()  # what the parent built before the fork (its pipeline, the model) is never rescanned here
    gc.set_threshold(*CHILD_GC_THRESHOLDS)
    sender = BatchSender(conn, lambda: capture.bytes_read)
    try:
        collector = Collector(source_rules_first(rules, sender.add), config, on_tick=sender.add)
        collector.run(capture)
        collector.finish()
        totals = CollectorTotals.of(collector)
        errors = Counter(capture.errors)
        ends = (rules.flush(), rules.totals())
        sender.end(ChildEnd(totals, capture.truncated, errors, child_cpu_s(), source_rules=ends))
    except BaseException:  # the parent reports it; a child must not die silently
        sender.fail()
    finally:
        conn.close()


def widen_pipe(fd: int, size: int = PIPE_BYTES) -> int:
    """Ask for a ``size`` buffer on pipe ``fd``; the size it has (the default where refused).

    Refused above ``/proc/sys/fs/pipe-max-size`` to an unprivileged user, or over a user's
    pipe quota: the hand-over then runs as before, only with less slack.
    """
    try:
        return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except OSError:
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def start_child(target: Callable[..., None], *args: object) -> tuple[BaseProcess, Connection]:
    """Fork ``target(*args, send)``; (the child, the receiving end of its pipe)."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    widen_pipe(send.fileno())
    child = ctx.Process(target=target, args=(*args, send), name="callqual-collector")
    child.start()
    send.close()
    return child, receive


def receive_all(
    pipeline: EmbeddedPipeline, child: BaseProcess, receive: Connection, progress: Progress | None = None
) -> ChildEnd:
    """Feed the child's batches to ``pipeline`` until its end; always reaps the child.

    Raises :class:`SplitPipelineError` if the child failed, died or sent
    something unreadable (the child is then stopped, never left behind).
    """
    run_events = pipeline.run_events
    finished = False
    try:
        while True:
            try:
                data = receive.recv_bytes()
            except (EOFError, OSError):  # OSError: it died in the middle of a batch
                child.join()
                raise SplitPipelineError(f"the collector process died (exit code {child.exitcode})") from None
            tag = data[:1]
            if tag == _END:
                end: ChildEnd = pickle.loads(data[1:])
                pipeline.adopt_collector_totals(end.totals)
                if end.source_rules is not None:
                    pipeline.adopt_source_rules_end(*end.source_rules)
                finished = True
                return end
            if tag == _FAILED:
                failure = data[1:].decode(errors="replace")
                raise SplitPipelineError(f"the collector process failed:\n{failure}")
            try:
                position, items = decode_batch(data)
            except CodecError as exc:
                raise SplitPipelineError(f"the collector process sent an unreadable batch: {exc}") from None
            run_events(items)
            if progress is not None:
                progress(position)
    finally:
        if not finished and child.is_alive():
            child.terminate()  # we failed (or were interrupted): the child has no one to send to
        receive.close()
        child.join()


def run_split(
    pipeline: EmbeddedPipeline, capture: CaptureFile, progress: Progress | None = None
) -> tuple[bool, Counter[str]]:
    """Run ``capture`` through ``pipeline`` with its collector in a forked child.

    Returns the capture's (truncated, reader errors), as the child's reader
    saw them. The caller then finishes and reports as usual; the
    pipeline's own collector is never fed, its totals come from the child.
    """
    rules = pipeline.hand_over_source_rules(KEEP_FROM)
    child, receive = start_child(_collect, capture, pipeline.collector.config, rules)
    end = receive_all(pipeline, child, receive, progress)
    return end.truncated, end.reader_errors
