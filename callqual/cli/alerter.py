"""``callqual alerter``: Prometheus metrics and notifications from the detector's output.

Reads alerts and call records from Kafka (``CALLQUAL_KAFKA_*``), or, with
``--replay CAPTURE``, from an in-process analysis of a capture file (the
demo, or a one-off look at a pcap in Grafana). Serves ``/metrics`` and
``/healthz``, and sends notifications to the configured receivers. Stops
cleanly on SIGTERM or Ctrl-C: pending groups are sent, queued notifications
get ``--drain-timeout`` seconds, and what is still undelivered is
dead-lettered rather than lost.

Secrets come only from the environment: CALLQUAL_ALERTER_WEBHOOK_SECRET (HMAC
key of the generic webhook) and CALLQUAL_ALERTER_SLACK_WEBHOOK_URL.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from callqual.alerter.service import build_service, feed_report, record_topics
from callqual.alerter.settings import AlerterSettings
from callqual.observability.http_server import MetricsServer
from callqual.observability.metrics import AlerterMetrics
from callqual.pipeline.stop_signals import stop_on_signals
from callqual.transport import EventSink, EventSource, InProcessBus

log = logging.getLogger("callqual.alerter")

#: Flag -> settings field, for the flags that are not secrets
_FLAGS = {
    "transport": "transport",
    "replay": "replay",
    "group_id": "group_id",
    "listen_host": "listen_host",
    "port": "port",
    "webhook_url": "webhook_url",
    "alertmanager_url": "alertmanager_url",
    "group_wait": "group_wait_s",
    "group_interval": "group_interval_s",
    "max_per_minute": "max_notifications_per_minute",
    "retry_window": "retry_window_s",
    "drain_timeout": "drain_timeout_s",
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "alerter",
        help="serve Prometheus metrics and send alert notifications (webhook, Slack, Alertmanager)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--transport", choices=["kafka", "inprocess"], help="input (default kafka)")
    p.add_argument("--replay", type=Path, metavar="CAPTURE", help="analyse CAPTURE in-process and serve it")
    p.add_argument("--group-id", help="Kafka consumer group (default callqual-alerter)")
    p.add_argument("--listen-host", help="address of /metrics and /healthz (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port of /metrics and /healthz (default 9469)")
    p.add_argument("--webhook-url", help="generic JSON webhook receiver")
    p.add_argument("--alertmanager-url", help="Alertmanager base URL (alerts go to /api/v2/alerts)")
    p.add_argument("--group-wait", type=float, help="seconds to collect a new group's alerts (default 10)")
    p.add_argument("--group-interval", type=float, help="seconds between a group's summaries (default 300)")
    p.add_argument("--max-per-minute", type=float, help="notifications per minute, all groups (default 20)")
    p.add_argument("--retry-window", type=float, help="seconds a receiver may be down (default 900)")
    p.add_argument("--drain-timeout", type=float, help="seconds to send queued notifications on stop")
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> AlerterSettings:
    overrides = {
        field: getattr(args, flag) for flag, field in _FLAGS.items() if getattr(args, flag) is not None
    }
    return AlerterSettings(**overrides)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from_args(args)
    stop = threading.Event()

    stop_on_signals(stop.set)

    metrics = AlerterMetrics()
    source: EventSource | None = None
    sink: EventSink | None = None
    closers: list[object] = []
    if settings.replay is None and settings.transport == "kafka":
        from callqual.transport.kafka import KafkaEventSink, KafkaEventSource
        from callqual.transport.settings import KafkaSettings

        kafka = KafkaSettings()
        topics = kafka.topics()
        kafka_sink = KafkaEventSink(kafka)
        source = KafkaEventSource(kafka, [topics.alerts, *record_topics(topics)], group_id=settings.group_id)
        sink = kafka_sink
        closers.append(kafka_sink)
    else:
        from callqual.transport import TOPICS

        topics = TOPICS
        bus = InProcessBus()
        sink = bus.sink()
        if settings.replay is None:
            source = bus.source([topics.alerts, *record_topics(topics)])
    service = build_service(settings, metrics, dead_letter=sink, topics=topics)
    server = MetricsServer(metrics, settings.listen_host, settings.port, healthy=service.healthy).start()
    log.info("serving /metrics and /healthz on http://%s:%d", settings.listen_host, server.port)
    log.info("receivers: %s", ", ".join(w.receiver.name for w in service.notifier.workers) or "none")
    service.notifier.start()
    if settings.replay is not None:
        from callqual.pipeline.embedded import analyze_file

        report = analyze_file(settings.replay)
        feed_report(service, report)
        log.info(
            "replayed %s: %d calls, %d alerts",
            settings.replay,
            report.summary.calls,
            report.summary.alerts,
        )
    try:
        service.run(source, stop)
    finally:
        service.notifier.close(settings.drain_timeout_s)
        if source is not None:
            source.close()
        for closer in closers:
            close = getattr(closer, "close", None)
            if close is not None:
                close()
        server.close()
    log.info("stopped")
    return 0
