"""Batches written on a thread of their own, strictly in order, at most K handed over at once.

Why: the store's client work (decoding Kafka records, building rows) and the database's work
on a batch used to take turns. With one writer thread, batch N is written (its own pooled
connection) while the consuming thread decodes batch N+1, so the two overlap. One thread,
first in first out, keeps what made the sequential path right: each batch sees every earlier
batch committed (per-call message bound, retransmission look-ups), and batches finish in the
order they were read, so offsets are acknowledged in order and only after their commit.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")

#: How long a busy thread keeps the GIL once the writer thread asks for it back (Python's default
#: is 5 ms). The writer waits on the server ~80 times per batch, and each time it must get the GIL
#: back from the thread building the next batch: at 5 ms a write took twice as long as in line.
WRITER_SWITCH_INTERVAL_S = 0.0005


@contextmanager
def writer_switch_interval() -> Iterator[None]:
    """While a writer thread runs beside a busy one: hand the GIL over sooner (process-wide,
    restored afterwards; never raised if it is shorter already)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, WRITER_SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class InFlightWriter(Generic[T]):
    """A writer thread fed first in first out; ``write(job)`` is True once the job is committed.

    ``write`` retries on its own until it succeeds or returns False (it should give up only
    once ``stopping`` is set); after a job that was not written, later jobs are not attempted
    (they are given back unwritten), so nothing is ever committed past a gap. ``idle`` runs on
    the writer thread between jobs (housekeeping that must not race the writes).
    """

    def __init__(
        self,
        write: Callable[[T], bool],
        limit: int,
        *,
        idle: Callable[[], None] = lambda: None,
        idle_every_s: float = 1.0,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.stopping = threading.Event()
        self._write = write
        self._idle = idle
        self._idle_every_s = idle_every_s
        self._jobs: queue.Queue[T | None] = queue.Queue()
        self._done: queue.Queue[tuple[T, bool]] = queue.Queue()
        self._in_flight: deque[T] = deque()
        self._gap = False
        #: What stopped the writer, if ``write`` raised: ``collect`` raises it on the reader
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._loop, name="callqual-store-writer", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        """Jobs handed over and not yet collected."""
        return len(self._in_flight)

    def in_flight(self) -> Iterator[T]:
        return iter(self._in_flight)

    @property
    def full(self) -> bool:
        return len(self._in_flight) >= self.limit

    def submit(self, job: T) -> None:
        """Hand ``job`` over; the caller keeps to ``limit`` (``full``) before reading more."""
        self._in_flight.append(job)
        self._jobs.put(job)

    def collect(self, timeout: float = 0.0) -> list[tuple[T, bool]]:
        """Finished jobs in the order handed over, with whether each was committed; waits up to
        ``timeout`` for the first one."""
        out: list[tuple[T, bool]] = []
        if timeout <= 0 and self._done.empty():
            return out  # asked once per consumed record: no queue.Empty raised and caught
        try:
            out.append(self._done.get(timeout=timeout) if timeout > 0 else self._done.get_nowait())
            while True:
                out.append(self._done.get_nowait())
        except queue.Empty:
            pass
        for _ in out:
            self._in_flight.popleft()
        if self.error is not None and any(not ok for _, ok in out):
            raise self.error
        return out

    def close(self) -> None:
        """Stop the thread after the jobs handed over (``stopping`` makes ``write`` give up)."""
        self._jobs.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_every_s)
            except queue.Empty:
                self._idle()
                continue
            if job is None:
                return
            ok = False
            if not self._gap:
                try:
                    ok = self._write(job)
                except Exception as exc:  # handed to the reader, raised there by ``collect``
                    self.error = exc
            self._gap = self._gap or not ok
            self._done.put((job, ok))
            self._idle()
