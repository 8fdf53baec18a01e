"""Analyse a capture into a store in-process: what ``callqual analyze --store`` and the web UI's upload use.

SIP messages and interval reports are written in batches while the capture is read (memory
stays bounded by the batch, not the capture); calls, streams and alerts follow when the
analysis ends, and the derived call columns are refreshed then. The batches go through a
``PipelinedWriter``: written on a thread of their own while the analysis goes on.
"""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.config import CollectorConfig
from callqual.detector.detector import CallScorer
from callqual.detector.rules.settings import RuleSettings
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnalysisReport, AnyEvent, RtpStreamReport, SipMessageEvent
from callqual.store.engine import open_store
from callqual.store.pipelined import PipelinedWriter
from callqual.store.writer import Batch, StoreWriter, WriteStats

#: Collector events buffered before a write (about 1-2 MB of SIP).
EVENT_BATCH = 2000
#: Batches written on a writer thread while the analysis goes on, by engine (others: in line).
#: SQLite works in this process: a thread beside the analysis only contends for the GIL
#: (measured slower, bench/RESULTS.md "Session 6, branch store-pg").
PIPELINE_DEPTH = {"postgresql": 2}


@dataclass(frozen=True, slots=True)
class StoredAnalysis:
    report: AnalysisReport
    #: SIP messages newly stored and those over the per-call bound
    stats: WriteStats


class StoringPipeline:
    """An :class:`EmbeddedPipeline` whose SIP messages and interval reports go to a store as they come."""

    def __init__(
        self,
        writer: StoreWriter,
        collector_config: CollectorConfig | None = None,
        rule_settings: RuleSettings | None = None,
        scorer: CallScorer | None = None,
    ) -> None:
        self.writer = writer
        self._pipe = PipelinedWriter(writer, PIPELINE_DEPTH.get(writer.engine.dialect.name, 0))
        self._pending = Batch()
        self.pipeline = EmbeddedPipeline(
            collector_config, rule_settings, scorer=scorer, on_event=self._on_event
        )

    def _on_event(self, event: AnyEvent) -> None:
        if isinstance(event, SipMessageEvent):
            self._pending.messages.append(event)
        elif isinstance(event, RtpStreamReport) and not event.final:
            self._pending.intervals.append(event)
        if len(self._pending) >= EVENT_BATCH:
            self._flush()

    @property
    def stats(self) -> WriteStats:
        """What the batches committed so far did."""
        return self._pipe.stats

    def _flush(self) -> None:
        if len(self._pending):
            self._pipe.submit(self._pending)
            self._pending = Batch()

    def store(self, report: AnalysisReport) -> StoredAnalysis:
        """After ``pipeline.finish()``: write what is pending plus the report's calls, streams,
        alerts, and wait until all of it is committed (then the writer thread is stopped)."""
        try:
            self._flush()
            self._pipe.submit(self.writer.report_batch(report))
            return StoredAnalysis(report, self._pipe.finish())
        finally:
            self.close()

    def close(self) -> None:
        """Stop the writer thread (what it has not written by now is not written)."""
        self._pipe.close()


def analyze_into_store(
    capture_path: str | Path,
    url: str | Engine,
    *,
    collector_config: CollectorConfig | None = None,
    rule_settings: RuleSettings | None = None,
    scorer: CallScorer | None = None,
    max_messages_per_call: int = 500,
) -> StoredAnalysis:
    """Analyse ``capture_path`` and store calls, streams, intervals, alerts and SIP messages at ``url``.

    ``url`` is a store URL (migrated on open) or an engine from :func:`open_store`. Raises what
    :func:`open_capture` raises for unreadable input (``FileNotFoundError``, ``CaptureFormatError``).
    """
    engine = open_store(url) if isinstance(url, str) else url
    storing: StoringPipeline | None = None
    try:
        storing = StoringPipeline(
            StoreWriter(engine, max_messages_per_call), collector_config, rule_settings, scorer
        )
        with open_capture(capture_path) as capture:
            storing.pipeline.run(capture)
            storing.pipeline.finish()
            report = storing.pipeline.report(str(capture_path), capture.truncated, capture.errors)
        return storing.store(report)
    finally:
        if storing is not None:
            storing.close()
        if isinstance(url, str):
            engine.dispose()
