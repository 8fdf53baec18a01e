"""``callqual store --members N``: N store processes in one consumer group, under one command.

One Python process writes at most about one core's worth; past that, Kafka spreads the input
topics' partitions over N members, each a whole ``callqual store`` (its own consumer, database
connection, writer thread, /metrics and /healthz on ``--port`` + i). The writer makes their
concurrent transactions safe (``callqual.store.writer``). This parent only supervises: it
migrates the schema and creates the topics once, starts the members, starts again one that a
signal killed (its partitions go to the others meanwhile, and come back), passes SIGTERM/SIGINT
on, and exits with the worst member's code. PostgreSQL only: SQLite takes one writer at a time.
"""

import argparse
import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callqual.store.service_settings import StoreSettings
    from callqual.transport.settings import KafkaSettings

log = logging.getLogger("callqual.store")

#: Seconds before a killed member is started again (its partitions move meanwhile)
RESTART_DELAY_S = 1.0


def _member_main(args: argparse.Namespace, member: int) -> None:
    """A member's process (spawned: a fresh interpreter, nothing inherited but ``args``)."""
    from callqual.cli.store import run_member

    raise SystemExit(run_member(args, member))


def _prepare(settings: "StoreSettings", kafka: "KafkaSettings") -> int:
    """Schema migrated and topics made once, before the members start; an exit code."""
    from sqlalchemy.exc import SQLAlchemyError

    from callqual.store.engine import migrate
    from callqual.store.service import build_engine, input_topics
    from callqual.transport.kafka import ensure_service_topics

    engine = build_engine(settings)
    try:
        if engine.dialect.name != "postgresql":
            log.error("bad settings: members: more than one needs a postgresql:// store")
            return 2
        try:
            migrate(engine)
        except SQLAlchemyError as exc:
            # The members wait for the database with backoff (and migrate then): not fatal here.
            log.warning("store not migrated yet: %s", type(exc).__name__)
    finally:
        engine.dispose()
    topics = kafka.topics()
    ensure_service_topics(kafka, [*input_topics(topics), topics.deadletter])
    return 0


def supervise(args: argparse.Namespace) -> int:
    """Run the ``--members`` (``CALLQUAL_STORE_MEMBERS``) members until they stop: the worst
    member's exit code (0, or 1 if one left a batch unwritten), 2 for bad settings."""
    from callqual.cli.store import settings_of
    from callqual.pipeline.stop_signals import stop_on_signals

    found = settings_of(args)
    if found is None:
        return 2
    code = _prepare(*found)
    if code:
        return code
    members = found[0].members
    spawn = multiprocessing.get_context("spawn")
    stop = threading.Event()
    stop_on_signals(stop.set)

    def start(member: int) -> BaseProcess:
        process = spawn.Process(target=_member_main, args=(args, member), name=f"callqual-store.{member}")
        process.start()
        log.info("member started", extra={"member": member, "pid": process.pid})
        return process

    running = {m: start(m) for m in range(members)}
    codes: dict[int, int] = {}
    restarts = 0
    forwarded = False
    while running:
        if stop.is_set() and not forwarded:
            forwarded = True
            for process in running.values():
                if process.pid is not None and process.exitcode is None:
                    os.kill(process.pid, signal.SIGTERM)
        for member, process in list(running.items()):
            exitcode = process.exitcode
            if exitcode is None:
                continue
            process.close()
            del running[member]
            if exitcode < 0 and not stop.is_set():
                restarts += 1
                log.warning(
                    "member killed, starting it again",
                    extra={"member": member, "signal": signal.Signals(-exitcode).name, "restarts": restarts},
                )
                if not stop.wait(RESTART_DELAY_S):
                    running[member] = start(member)
                    continue
            codes[member] = exitcode if exitcode >= 0 else 1
        stop.wait(0.2)
    code = max(codes.values(), default=0)
    log.info("stopped", extra={"exit_code": code, "member_codes": codes, "restarts": restarts})
    return code
