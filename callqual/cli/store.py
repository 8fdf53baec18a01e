"""``callqual store``: keep the pipeline's calls, streams, intervals, alerts and SIP messages in a store.

Consumes Kafka (``CALLQUAL_KAFKA_*``) and writes to ``--store URL`` (or CALLQUAL_STORE_URL,
which is where a password belongs: flags show in process listings). Serves /metrics and
/healthz (503 while the database is unreachable). Exit codes, for supervisors:

* 0 - stopped (SIGTERM, or --exit-when-idle) with everything consumed written and committed
* 1 - stopped with a batch the database never took: its offsets were not committed (replayed)
* 2 - bad settings

``--members N`` runs N such processes in one consumer group (see ``store_members``): member i
serves /metrics and /healthz on ``--port`` + i.
"""

import argparse
import logging
import threading
from typing import TYPE_CHECKING, Any

from callqual.cli import jsonlog

if TYPE_CHECKING:
    from callqual.store.service_settings import StoreSettings
    from callqual.transport.settings import KafkaSettings

log = logging.getLogger("callqual.store")

#: Flag -> StoreSettings field
_FLAGS = {
    "store": "url",
    "group_id": "group_id",
    "batch_size": "batch_size",
    "batch_interval": "batch_interval_s",
    "writes_in_flight": "writes_in_flight",
    "max_messages_per_call": "max_messages_per_call",
    "retention_days": "retention_days",
    "listen_host": "listen_host",
    "port": "port",
    "exit_when_idle": "exit_when_idle_s",
    "members": "members",
}


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "store",
        help="service: write calls, streams, alerts and SIP messages from Kafka into the call store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--store", metavar="URL", help="sqlite:///calls.db or postgresql://... (CALLQUAL_STORE_URL)"
    )
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--topic-prefix", help="topic name prefix (default 'callqual.')")
    p.add_argument("--partitions", type=int, help="partitions of topics created at start-up")
    p.add_argument("--group-id", help="consumer group (default callqual-store)")
    p.add_argument("--batch-size", type=int, help="messages per transaction (default 1000)")
    p.add_argument(
        "--batch-interval", type=float, help="seconds before a partial batch is written (default 1)"
    )
    p.add_argument(
        "--writes-in-flight",
        type=int,
        metavar="K",
        help="batches written on a writer thread while the next are read (default 2; 0: in the loop)",
    )
    p.add_argument("--max-messages-per-call", type=int, help="SIP messages kept per Call-ID (default 500)")
    p.add_argument("--retention-days", type=int, metavar="N", help="hourly, drop what is older than N days")
    p.add_argument("--listen-host", help="address of /metrics and /healthz (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port of /metrics and /healthz (default 9470, 0: any)")
    p.add_argument(
        "--exit-when-idle", type=float, metavar="SECONDS", help="stop after this long without input"
    )
    p.add_argument(
        "--members",
        type=int,
        metavar="N",
        help="store processes in the consumer group, supervised by this one (PostgreSQL; default 1)",
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    jsonlog.setup("store", args.log_level)
    found = settings_of(args)
    if found is None:
        return 2
    if found[0].members > 1:
        from callqual.cli.store_members import supervise

        return supervise(args)
    return run_member(args)


def settings_of(args: argparse.Namespace) -> "tuple[StoreSettings, KafkaSettings] | None":
    """The validated settings of ``args`` and the environment; None (logged) if they are bad."""
    from pydantic import ValidationError

    from callqual.store.service_settings import StoreSettings
    from callqual.transport.settings import KafkaSettings

    overrides: dict[str, Any] = {
        f: getattr(args, k) for k, f in _FLAGS.items() if getattr(args, k) is not None
    }
    kafka_overrides: dict[str, Any] = {"client_id": "callqual-store"}
    for name in ("bootstrap_servers", "topic_prefix", "partitions"):
        if getattr(args, name) is not None:
            kafka_overrides[name] = getattr(args, name)
    try:
        settings = StoreSettings(**overrides)
        kafka = KafkaSettings(**kafka_overrides)
    except ValidationError as exc:
        # Field names and messages only: the input (a URL with its password) is never echoed.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        log.error("bad settings: %s", problems)
        return None
    return settings, kafka


def run_member(args: argparse.Namespace, member: int | None = None) -> int:
    """One store process; ``member`` i of ``--members``: logs as store.i, serves on port + i."""
    from callqual.observability.http_server import MetricsServer
    from callqual.pipeline.stop_signals import stop_on_signals
    from callqual.store.service import StoreMetrics, StoreService, build_engine
    from callqual.transport.kafka import KafkaEventSink, KafkaEventSource, ensure_service_topics

    jsonlog.setup("store" if member is None else f"store.{member}", args.log_level)
    # Decoding allocates many short-lived objects per record: the same tuning as analyze.
    from callqual.cli.gc_tuning import tune_gc_for_throughput

    tune_gc_for_throughput()
    found = settings_of(args)
    if found is None:
        return 2
    settings, kafka = found
    if member is not None and settings.port:
        settings = settings.model_copy(update={"port": settings.port + member})
    topics = kafka.topics()
    engine = build_engine(settings)
    metrics = StoreMetrics()
    sink = KafkaEventSink(kafka)
    service = StoreService(engine, settings, metrics, topics=topics, dead_letter=sink)
    ensure_service_topics(kafka, [*service.input_topics(), topics.deadletter])
    source = KafkaEventSource(kafka, service.input_topics(), group_id=settings.group_id)
    server = MetricsServer(metrics, settings.listen_host, settings.port, healthy=service.healthy).start()
    stop = threading.Event()
    stop_on_signals(stop.set)
    log.info(
        "store started",
        extra={
            "group_id": settings.group_id,
            "dialect": engine.dialect.name,
            "metrics_port": server.port,
            "member": member,
        },
    )
    try:
        code = service.run(source, stop)
    finally:
        source.close()
        sink.close()
        server.close()
        engine.dispose()
    batches = metrics.registry.get_sample_value("callqual_store_batches_total") or 0
    log.info("stopped", extra={"exit_code": code, "member": member, "batches": int(batches)})
    return code
