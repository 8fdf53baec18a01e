"""The store's writer thread on its own: order, the bound, nothing past a gap, errors surfaced."""

from __future__ import annotations

import threading

import pytest

from callqual.store.inflight import InFlightWriter


def _drain(writer: InFlightWriter[int]) -> list[tuple[int, bool]]:
    out: list[tuple[int, bool]] = []
    while len(writer):
        out += writer.collect(timeout=5.0)
    return out


def test_jobs_finish_in_the_order_handed_over_and_the_bound_is_reported() -> None:
    release = threading.Event()
    written: list[int] = []

    def write(job: int) -> bool:
        release.wait(10)
        written.append(job)
        return True

    writer = InFlightWriter(write, limit=3)
    try:
        for job in range(3):
            writer.submit(job)
        assert writer.full and len(writer) == 3
        assert writer.collect() == []  # nothing committed yet: nothing to acknowledge
        release.set()
        assert _drain(writer) == [(0, True), (1, True), (2, True)]
        assert written == [0, 1, 2] and not writer.full
    finally:
        writer.close()


def test_nothing_is_written_after_a_job_that_was_not() -> None:
    written: list[int] = []

    def write(job: int) -> bool:
        if job == 1:
            return False  # as the store's writer does when stopped with the database away
        written.append(job)
        return True

    writer = InFlightWriter(write, limit=4)
    try:
        for job in range(4):
            writer.submit(job)
        assert _drain(writer) == [(0, True), (1, False), (2, False), (3, False)]
        assert written == [0]
    finally:
        writer.close()


def test_an_error_in_the_writer_is_raised_to_the_reader() -> None:
    def write(job: int) -> bool:
        raise RuntimeError(f"cannot write {job}")

    writer = InFlightWriter(write, limit=2)
    try:
        writer.submit(7)
        with pytest.raises(RuntimeError, match="cannot write 7"):
            _drain(writer)
    finally:
        writer.close()


def test_idle_work_runs_on_the_writer_thread_between_jobs() -> None:
    threads: set[str] = set()
    writer = InFlightWriter(
        lambda job: True,
        limit=1,
        idle=lambda: threads.add(threading.current_thread().name),
        idle_every_s=0.01,
    )
    try:
        writer.submit(1)
        assert _drain(writer) == [(1, True)]
    finally:
        writer.close()
    assert threads == {"callqual-store-writer"}
