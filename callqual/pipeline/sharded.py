"""``analyze --workers N``: N collectors share one capture file's RTP, one detector sees it all.

Every collector reads the whole file and tracks all signalling, but keeps RTP
statistics only for its share of the media flows (``FlowShard``): the
per-packet work of an RTP capture is split N ways. Share 0 runs here, next to
the detector; the others run in forked worker processes and send back only
their stream reports. The detector must see exactly the event sequence one
collector would emit, so that the report is byte for byte the same: each
collector tags what it emits with its place in that sequence (:data:`Tag`),
and the events are merged by tag:

* the frame being fed (``Collector.at_frame``; finish() comes after all frames);
* the phase of that frame: its capture second's reports (0), the tick after
  them, when the detector judges the calls still up (1), then what the frame
  itself emits (2); a frame that did not tick has only phase 0;
* stream reports before the other events of a phase (a re-bound flow's final
  reports come before the RTCP of the frame that re-bound it);
* a stream report's flow by the frame that put it in the flow table, which is
  the order in which one collector walks its flows at a tick;
* the collector's own emission order.

Memory stays flat: a worker sends its reports after each record batch with a
watermark (every report of an earlier frame has been sent), and blocks on a
full pipe when it runs ahead; this process merges after each of its batches.
"""

import contextlib
import multiprocessing
import resource
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from callqual.collector.capture.pcap_file import CaptureFile, open_capture
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.collector.media.flow_shard import FlowShard
from callqual.collector.packet import Frame, RecordBatch
from callqual.pipeline.collector_totals import CollectorTotals
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnyEvent

__all__ = ["ShardWorkerError", "run_sharded"]

#: Sorts after every frame number: what finish() emits.
_END = 1 << 62

#: (frame, phase, 0 stream report / 1 other event, the flow's table place, emission number)
Tag = tuple[int, int, int, int, int]
#: An event, or None: the detector's tick (judge the calls still up)
Tagged = tuple[Tag, AnyEvent | None]


class ShardWorkerError(Exception):
    """A worker process failed (its traceback), or ended without finishing."""


@dataclass(frozen=True, slots=True)
class WorkerTotals:
    """What a worker reports once its share is done."""

    collector: CollectorTotals
    #: the worker's peak RSS, KiB
    max_rss_kib: int


class _Tagger:
    """A collector's event sink: tags each event it keeps with its place in the sequence."""

    def __init__(self, shard: FlowShard) -> None:
        self._first = shard.index == 0
        self._frame = -1
        self._phase = 0
        self._n = 0
        self.collector: Collector | None = None
        self.out: list[Tagged] = []

    def _place(self) -> int:
        assert self.collector is not None
        frame = self.collector.at_frame
        if frame != self._frame:
            self._frame = frame
            self._phase = 0
        return frame

    def emit(self, event: AnyEvent) -> None:
        frame = self._place()
        if event.kind == "rtp_stream":
            assert self.collector is not None
            place = self.collector.flow_inserted(event.src_ip, event.src_port, event.dst_ip, event.dst_port)
            tag = (frame, self._phase, 0, place, self._n)
        elif self._first:
            tag = (frame, self._phase, 1, 0, self._n)
        else:
            return  # signalling and RTCP: share 0 emits the same
        self._n += 1
        self.out.append((tag, event))

    def on_tick(self, _now: float) -> None:
        frame = self._place()
        if self._first:
            self.out.append(((frame, 1, 0, 0, self._n), None))
            self._n += 1
        self._phase = 2


class _AfterEachBatch:
    """A capture's record batches for Collector.run, calling ``after(last frame)`` once each is fed."""

    def __init__(self, capture: CaptureFile, after: Callable[[int], None]) -> None:
        self._capture = capture
        self._after = after

    def record_batches(self) -> Iterator[RecordBatch]:
        batches = self._capture.record_batches()
        if batches is None:
            raise ValueError("the capture's frames were already being read")
        for batch in batches:
            yield batch
            self._after(batch.first_number + len(batch) - 1)

    def __iter__(self) -> Iterator[Frame]:  # Collector.run takes record_batches() when there is one
        raise TypeError("read through record_batches()")


def _work(path: str, config: CollectorConfig, shard: FlowShard, conn: Connection) -> None:
    """Worker process: ("events", tagged, watermark) after each batch, then ("done", totals, -)."""
    try:
        out: list[Tagged] = []

        def flush(watermark: int) -> None:
            conn.send(("events", out[:], watermark))
            out.clear()

        with open_capture(path) as capture:
            collector = _share_into(capture, config, shard, out, flush)
        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        conn.send(("done", WorkerTotals(CollectorTotals.of(collector), usage), _END + 1))
    except BaseException as exc:
        # Only what went wrong, in one line; nothing at all when this process is being stopped
        # (its pipe closed, or interrupted with the whole command).
        what = traceback.format_exception_only(exc)[-1].strip()
        with contextlib.suppress(OSError):
            conn.send(("error", what, 0))
    finally:
        conn.close()


def _share_into(
    capture: CaptureFile,
    config: CollectorConfig,
    shard: FlowShard,
    out: list[Tagged],
    flush: Callable[[int], None],
) -> Collector:
    """_share with the tagger writing into ``out`` (which ``flush`` empties)."""
    tagger = _Tagger(shard)
    tagger.out = out
    collector = Collector(tagger.emit, config, on_tick=tagger.on_tick)
    collector.shard = shard
    tagger.collector = collector
    collector.run(_AfterEachBatch(capture, lambda last: flush(last + 1)))
    collector.at_frame = _END
    collector.finish()
    flush(_END + 1)
    return collector


@dataclass(slots=True)
class _Worker:
    """This process's view of one worker: events received and not yet delivered, and its watermark."""

    index: int
    conn: Connection
    events: deque[Tagged] = field(default_factory=deque)
    #: every event of a frame below this has been received
    watermark: int = 0
    totals: WorkerTotals | None = None

    def receive(self) -> None:
        try:
            what, body, watermark = self.conn.recv()
        except EOFError:
            raise ShardWorkerError(f"worker {self.index} ended without finishing") from None
        if what == "error":
            raise ShardWorkerError(f"worker {self.index} failed: {body}")
        if what == "done":
            self.totals = body
        else:
            self.events.extend(body)
        self.watermark = watermark


class _Merge:
    """Delivers share 0's events and the workers' in tag order to the pipeline's detector."""

    def __init__(self, pipeline: EmbeddedPipeline, workers: list[_Worker]) -> None:
        self._pipeline = pipeline
        self._workers = workers
        self.own: list[Tagged] = []

    def flush(self, watermark: int) -> None:
        """Deliver every event of a frame below ``watermark`` (share 0 has fed those frames)."""
        for tag, event in self.own:
            self._workers_before(tag)
            self._deliver(event)
        self.own.clear()
        self._workers_before((watermark - 1, 3, 0, 0, 0))  # after every phase of the last frame

    def _workers_before(self, bound: Tag) -> None:
        while True:
            best: _Worker | None = None
            for w in self._workers:
                while not w.events and w.watermark <= bound[0]:
                    w.receive()
                if (
                    w.events
                    and w.events[0][0] < bound
                    and (best is None or w.events[0][0] < best.events[0][0])
                ):
                    best = w
            if best is None:
                return
            self._deliver(best.events.popleft()[1])

    def _deliver(self, event: AnyEvent | None) -> None:
        if event is None:
            self._pipeline.on_tick(0.0)
        else:
            self._pipeline.deliver(event)


def run_sharded(
    pipeline: EmbeddedPipeline, capture: CaptureFile, config: CollectorConfig, workers: int
) -> None:
    """Analyse ``capture`` with ``workers`` collectors (this process and workers - 1 forks).

    The pipeline's detector receives what its own collector would have given
    it, and ``pipeline.collector_totals`` the capture's counts; call
    ``pipeline.finish()`` after, as after ``pipeline.run``.
    """
    ctx = multiprocessing.get_context("fork")  # imports done once: workers start at once
    peers: list[_Worker] = []
    procs = []
    try:
        for i in range(1, workers):
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_work, args=(capture.path, config, FlowShard(i, workers), send), daemon=True
            )
            proc.start()
            send.close()
            peers.append(_Worker(i, receive))
            procs.append(proc)
        merge = _Merge(pipeline, peers)
        collector = _share_into(capture, config, FlowShard(0, workers), merge.own, merge.flush)
        for w in peers:
            while w.totals is None:
                w.receive()
            if w.events:
                raise ShardWorkerError(f"worker {w.index} sent events after the end")
    finally:
        for w in peers:
            w.conn.close()
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    own = CollectorTotals.of(collector)
    # A stream-table drop is counted by the flow's owner only (the table counts every share's streams).
    dropped = own.dropped.copy()
    dropped["rtp.stream_table_full"] += sum(
        w.totals.collector.dropped["rtp.stream_table_full"] for w in peers if w.totals is not None
    )
    pipeline.collector_totals = CollectorTotals(
        own.frames, own.bytes, own.first_ts, own.last_ts, own.errors, own.skipped, +dropped
    )
