"""The loop every detector stage member runs: poll, merge, apply, checkpoint, until stopped.

Shared by the call stage and the source stage, so both poll, flush a silent partition,
checkpoint and exit alike.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from callqual.transport.base import Message, PartitionedSource

log = logging.getLogger("callqual.detector.service")

EXIT_OK = 0
EXIT_FATAL = 1
#: Outputs could not be delivered: offsets were not committed, a restart replays
EXIT_UNDELIVERED = 6


class LoopSettings(Protocol):
    @property
    def exit_when_idle_s(self) -> float | None: ...
    @property
    def idle_flush_s(self) -> float: ...
    @property
    def checkpoint_interval_s(self) -> float: ...
    @property
    def stats_interval_s(self) -> float: ...


class Member(Protocol):
    """A stage member as the loop drives it."""

    name: str
    counters: dict[str, int]
    assigned_once: bool
    fatal: str | None

    def attach(self, source: PartitionedSource) -> None: ...
    def receive(self, message: Message) -> None: ...
    def apply_ready(self, force: bool = False) -> int: ...
    def checkpoint(self, commit: bool = False) -> bool: ...
    def export_metrics(self) -> None: ...


def run_member(member: Member, source: PartitionedSource, s: LoopSettings, stop: threading.Event) -> int:
    """Consume ``source`` until ``stop`` (or idle, if asked); returns the process exit code."""
    member.attach(source)
    log.info(f"{member.name} started", extra={"topic": source.topic})
    last_message = time.monotonic()
    next_checkpoint = last_message + s.checkpoint_interval_s
    next_stats = last_message + s.stats_interval_s
    next_metrics = last_message
    code = EXIT_OK
    try:
        while not stop.is_set():
            batch = source.poll_batch(1000, 0.2)
            now = time.monotonic()
            if batch:
                last_message = now
            for message in batch:
                member.receive(message)
            member.apply_ready()
            idle = now - last_message
            if idle >= s.idle_flush_s:
                member.apply_ready(force=True)
            if now >= next_checkpoint:
                next_checkpoint = now + s.checkpoint_interval_s
                if not member.checkpoint():
                    code = EXIT_UNDELIVERED
                    break
            if now >= next_metrics:
                next_metrics = now + 1.0
                member.export_metrics()
            if now >= next_stats:
                next_stats = now + s.stats_interval_s
                log.info(f"{member.name} progress", extra=dict(member.counters))
            if not member.assigned_once:
                # Idle means "assigned and nothing more to read": a member waiting for the
                # group to drop a crashed predecessor has not even started.
                last_message = now
            elif s.exit_when_idle_s is not None and idle >= s.exit_when_idle_s:
                member.apply_ready(force=True)
                log.info("idle, exiting", extra={"idle_s": round(idle, 1)})
                break
        if code == EXIT_OK and not member.checkpoint(commit=True):
            code = EXIT_UNDELIVERED
    except Exception as exc:  # a dead member must say why and exit for its supervisor
        log.exception(f"{member.name} failed", extra={"error": str(exc)})
        code = EXIT_FATAL
    finally:
        if code == EXIT_UNDELIVERED:
            log.error("stopping without committing", extra={"error": member.fatal})
        member.export_metrics()  # the last figures stay on /metrics until the server stops
        source.close()
    log.info(f"{member.name} stopped", extra={**member.counters, "exit_code": code})
    return code
