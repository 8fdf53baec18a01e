"""Batches written by a writer thread while the caller builds the next one's rows.

Why: the client's work on a batch (its rows: hashes, ratings, JSON) and the database's work on
the previous one used to take turns, so PostgreSQL ingest ran at the sum of the two. Here the
caller prepares batch N+1 while the writer thread (its own pooled connection; psycopg releases
the GIL while it waits on the server) has batch N in the database. One thread, first in first
out, keeps what made the sequential path right: each batch sees every earlier one committed
(per-call message bound, retransmission look-ups), and nothing is written past a batch that
was not (``InFlightWriter``'s gap rule).

A batch whose write fails because the database is away is written again, whole (its
transaction was rolled back; every row is an upsert or skipped when stored, so a commit whose
acknowledgement was lost is not doubled either), up to ``tries`` times with backoff; any other
error, or the last one, is raised to the caller by its next ``submit`` or ``finish``.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType

from callqual.store.inflight import InFlightWriter, writer_switch_interval
from callqual.store.prepared import Batch, PreparedBatch, prepare
from callqual.store.writer import StoreWriter, WriteStats, is_unavailable


@dataclass(slots=True)
class _Job:
    rows: PreparedBatch
    stats: WriteStats | None = None


class PipelinedWriter:
    """``StoreWriter.write_batch`` for a stream of batches, the next one prepared while one is written.

    ``depth`` bounds the batches handed to the writer and not yet committed (and so the memory);
    the times ``submit`` had to wait for room are counted in ``full_waits``, the writes tried
    again in ``retries``. ``depth`` 0: no thread, each batch written by ``submit`` itself (same
    retries). Use it as a context manager, or call ``finish`` then ``close``.
    """

    def __init__(
        self, writer: StoreWriter, depth: int = 2, *, tries: int = 5, backoff_s: float = 0.5
    ) -> None:
        if tries < 1:
            raise ValueError("tries must be at least 1")
        self.writer = writer
        self.stats = WriteStats()
        self.full_waits = 0
        self.retries = 0
        self._tries = tries
        self._backoff_s = backoff_s
        self._stopping = threading.Event()
        self._open = ExitStack()
        self._thread: InFlightWriter[_Job] | None = None
        if depth:
            self._open.enter_context(writer_switch_interval())
            self._thread = InFlightWriter(self._write, depth)

    def __enter__(self) -> PipelinedWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.finish()
        finally:
            self.close()

    @property
    def in_flight(self) -> int:
        """Batches handed to the writer thread and not yet collected."""
        return 0 if self._thread is None else len(self._thread)

    def submit(self, batch: Batch) -> None:
        """Prepare ``batch`` here and hand it to the writer; waits while ``depth`` are in flight.
        Raises what a row cannot hold (before anything of it is written) and what an earlier
        batch's write raised."""
        job = _Job(prepare(batch))
        if self._thread is None:
            self._collected(job, self._write(job))
            return
        self._collect(0.0)
        while self._thread.full:
            self.full_waits += 1
            self._collect(1.0)
        self._thread.submit(job)

    def finish(self) -> WriteStats:
        """Wait until every batch handed over is committed; what the writes did, in all."""
        while self.in_flight:
            self._collect(1.0)
        return self.stats

    def close(self) -> None:
        """Stop the writer thread: batches still waiting (after an error) are not written."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.stopping.set()
            self._thread.close()
        self._open.close()

    def _collect(self, timeout: float) -> None:
        assert self._thread is not None
        for job, written in self._thread.collect(timeout):  # raises the writer's error
            self._collected(job, written)

    def _collected(self, job: _Job, written: bool) -> None:
        if not written or job.stats is None:
            raise RuntimeError("a batch was not written: the writer was stopped")
        self.stats.add(job.stats)

    def _write(self, job: _Job) -> bool:
        """On the writer thread: write ``job``, again while the database is away (bounded)."""
        delay = self._backoff_s
        for attempt in range(self._tries):
            try:
                job.stats = self.writer.write_prepared(job.rows)
                return True
            except Exception as exc:
                if not is_unavailable(exc) or attempt + 1 == self._tries:
                    raise
            self.retries += 1
            if self._stopping.wait(delay):
                return False
            delay *= 2
        raise AssertionError("unreachable: the last try returns or raises")
