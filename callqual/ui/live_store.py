"""Live capture into the UI's store (``callqual ui --interface``): pages update as calls happen.

The collector and detector run in the capture's consumer thread, as in ``callqual analyze
--interface``, but their output (SIP messages, interval reports, calls, streams, alerts) is
queued for a writer thread that commits it every ``flush_interval_s`` (call-state updates too,
so a call's row is there from its INVITE on): the capture never
waits on the database, and a call's rows appear within a flush of its last message. The
queue is bounded; what does not fit is dropped and counted, never silently.

An idle link delivers no packets, and the detector's clock is capture time: without packets
a finished call would wait in its linger timer for the next one. A live capture's packets
carry wall-clock time, so the writer thread also moves the detector's clock to the wall
clock on each flush (under the lock the consumer holds while it feeds the detector).
"""

import logging
import threading
import time
from collections import Counter
from typing import TypeVar

from callqual.collector.capture.live import LiveCapture
from callqual.collector.collector import Collector
from callqual.detector.detector import Detector, Output
from callqual.detector.rule_engine import RuleEngine
from callqual.detector.rules.settings import RuleSettings
from callqual.pipeline.live import loss_notifier
from callqual.schemas import (
    AnyEvent,
    CallRecord,
    CallStateUpdate,
    RtpStreamReport,
    SipMessageEvent,
    StreamRecord,
)
from callqual.store.writer import Batch, StoreWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


class LiveStorer:
    """Collector -> detector -> a bounded batch -> the store, while a live capture runs."""

    def __init__(
        self,
        writer: StoreWriter,
        rule_settings: RuleSettings | None = None,
        *,
        flush_interval_s: float = 0.5,
        max_pending: int = 200_000,
    ) -> None:
        self.writer = writer
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        #: Rows not stored, by kind (queue full) and write failures
        self.dropped: Counter[str] = Counter()
        self.collector = Collector(self._event)
        self.detector = Detector(
            self._output, RuleEngine(rule_settings or RuleSettings()), on_call_state=self._call_state
        )
        self._lock = threading.Lock()
        self._detector_lock = threading.Lock()
        self._pending = Batch()
        self._done = threading.Event()

    def _add(self, kind: str, rows: list[T], item: T) -> None:
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self.dropped[kind] += 1
                return
            rows.append(item)

    def _event(self, event: AnyEvent) -> None:
        if isinstance(event, SipMessageEvent):
            self._add("messages", self._pending.messages, event)
        elif isinstance(event, RtpStreamReport) and not event.final:
            self._add("intervals", self._pending.intervals, event)
        with self._detector_lock:
            self.detector.handle(event)

    def _output(self, out: Output) -> None:
        if isinstance(out, CallRecord):
            self._add("calls", self._pending.calls, out)
        elif isinstance(out, StreamRecord):
            self._add("streams", self._pending.streams, out)
        else:
            self._add("alerts", self._pending.alerts, out)

    def _call_state(self, update: CallStateUpdate) -> None:
        """A call in flight: its row appears (and its live quality updates) before it ends."""
        self._add("call_states", self._pending.call_states, update)

    def flush(self) -> None:
        """Commit what is pending (from any thread); a failed write is counted and logged, not fatal."""
        with self._lock:
            batch, self._pending = self._pending, Batch()
        if not len(batch):
            return
        try:
            self.writer.write_batch(batch)
        except Exception as exc:  # a DB error must not stop the capture; the rows are counted as lost
            self.dropped["write_failed"] += len(batch)
            log.error("live store write failed (%s): %d rows lost", type(exc).__name__, len(batch))

    def _flush_loop(self) -> None:
        while not self._done.wait(self.flush_interval_s):
            with self._detector_lock:
                self.detector.clock_to(time.time())  # live packets are stamped with the wall clock
            self.flush()

    def run(self, capture: LiveCapture) -> None:
        """Consume ``capture`` until it stops, then finish the analysis and store the rest."""
        flusher = threading.Thread(target=self._flush_loop, name="live-store-flush", daemon=True)
        flusher.start()
        try:
            self.collector.run(capture.frames(loss_notifier(self.collector)))
        finally:
            self._done.set()
            flusher.join()
        self.collector.finish()
        self.detector.finish()
        self.flush()
