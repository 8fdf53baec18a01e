"""Prometheus metrics: what an operator graphs and alerts on.

Naming follows the Prometheus conventions: a ``callqual_`` namespace, base
units in the name (``_seconds``, ``_ratio``), ``_total`` on counters. Labels
are closed sets (call category, SIP status class, rule, severity, reason,
receiver, outcome): never a Call-ID, an address or a URI, because each label
value is a time series and an INVITE flood from random sources must not turn
into a cardinality explosion in Prometheus.

Every metric hangs off a :class:`AlerterMetrics` built on an explicit
``CollectorRegistry``, so tests (and several pipelines in one process) never
share the global default registry. The ``observe_*``/``export_summary``
functions are the only code that turns records into samples; services call
them, and the metric names they fill are the contract of
``deploy/prometheus`` and ``deploy/grafana``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callqual.schemas import Alert, CallRecord, StreamRecord, Summary

NAMESPACE = "callqual"

CALL_CATEGORIES = (
    "ok",
    "poor_quality",
    "one_way",
    "no_media",
    "failed_user",
    "failed_network",
    "failed_auth",
    "suspicious",
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "none")
SEVERITIES = ("info", "warning", "critical")
#: Webhook delivery outcomes; ``retried`` counts attempts, the others count notifications
DELIVERY_OUTCOMES = ("delivered", "retried", "failed", "dead_lettered", "dropped")

# Buckets chosen where decisions are made: MOS 3.1/3.6/4.0 are the
# "many users dissatisfied / some / satisfied" lines of ITU-T G.107 Annex B.
MOS_BUCKETS = (1.0, 1.5, 2.0, 2.5, 2.8, 3.1, 3.4, 3.6, 3.8, 4.0, 4.2, 4.4, 4.5)
JITTER_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5)
LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
SIGNALLING_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)


def status_class(status: int | None) -> str:
    """``404 -> "4xx"``; ``None`` (no final response seen) or nonsense -> ``"none"``."""
    if status is None or not 100 <= status <= 699:
        return "none"
    return f"{status // 100}xx"


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    # A value outside the closed set (a newer producer) is folded, never a new series per typo.
    return value if value in allowed else "other"


def _reason(reason: str) -> str:
    # Reasons are code-defined identifiers ("sip.bad_start_line"); clip anything odd anyway.
    return reason[:64] if reason else "unknown"


class _Families:
    """Metric constructors bound to one registry and the namespace: a family is declared in one line."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, namespace=NAMESPACE, registry=self._registry)

    def gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, labels, namespace=NAMESPACE, registry=self._registry)

    def histogram(self, name: str, documentation: str, *, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(name, documentation, namespace=NAMESPACE, registry=self._registry, buckets=buckets)


class AlerterMetrics:
    """All of voip-callqual's metrics on one registry.

    The pipeline-health families (captured/dropped packets, Kafka producer,
    consumer lag) are defined here too, so the collector and detector register
    the same names and the dashboards need one vocabulary.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        family = _Families(self.registry)
        # -- calls and media --------------------------------------------------
        self.calls = family.counter(
            "calls",
            "Finished INVITE dialogs by category and final SIP status class",
            "category",
            "status_class",
        )
        self.non_invite = family.counter(
            "sip_transactions", "Finished dialog-less SIP transactions (REGISTER, OPTIONS, MESSAGE, ...)"
        )
        self.active_calls = family.gauge("active_calls", "Calls set up and not yet ended, as last reported")
        self.call_mos = family.histogram(
            "call_mos",
            "Estimated listening-quality MOS per call (worst stream), ITU-T G.107 E-model",
            buckets=MOS_BUCKETS,
        )
        self.stream_jitter = family.histogram(
            "stream_jitter_seconds",
            "Mean RFC 3550 interarrival jitter per RTP stream",
            buckets=JITTER_BUCKETS,
        )
        self.stream_loss = family.histogram(
            "stream_loss_ratio", "Lost / expected RTP packets per stream (0..1)", buckets=LOSS_BUCKETS
        )
        self.post_dial_delay = family.histogram(
            "call_post_dial_delay_seconds",
            "INVITE to first ringing/progress response",
            buckets=SIGNALLING_BUCKETS,
        )
        self.setup_time = family.histogram(
            "call_setup_time_seconds", "INVITE to 200 OK of answered calls", buckets=SIGNALLING_BUCKETS
        )
        self.streams = family.counter("rtp_streams", "Finished RTP streams")
        self.alerts = family.counter("alerts", "Alerts raised by the detector", "rule", "severity")
        # -- pipeline health ---------------------------------------------------
        self.packets_captured = family.counter("packets_captured", "Frames handed to the collector")
        self.packets_dropped = family.counter(
            "packets_dropped",
            "Frames lost before analysis: where=kernel (socket buffer), interface (NIC), ours (queues)",
            "where",
        )
        self.parse_errors = family.counter(
            "parse_errors", "Malformed packets and SIP, counted by reason (never fatal)", "reason"
        )
        self.skipped = family.counter("skipped", "Input deliberately not analysed, by reason", "reason")
        self.dropped = family.counter(
            "dropped", "Bounded-table evictions and other deliberate drops, by reason", "reason"
        )
        for where in ("kernel", "interface", "ours"):
            self.packets_dropped.labels(where=where)
        self.kafka_produce_errors = family.counter(
            "kafka_produce_errors",
            "Messages Kafka did not take: failed deliveries and local-buffer refusals",
            "service",
        )
        self.kafka_queue_depth = family.gauge(
            "kafka_producer_queue_messages", "Messages waiting in the producer's local buffer", "service"
        )
        self.consumer_lag = family.gauge(
            "consumer_lag_messages",
            "Messages behind the end of the topic, where the transport can tell",
            "topic",
        )
        self.consumer_lag_seconds = family.gauge(
            "consumer_lag_seconds", "Age of the last message consumed (now - its timestamp)", "topic"
        )
        self.messages_consumed = family.counter("messages_consumed", "Messages the alerter consumed", "topic")
        # -- notifications -----------------------------------------------------
        self.webhook_deliveries = family.counter(
            "webhook_deliveries",
            "Notification deliveries by receiver and outcome (retried counts attempts)",
            "receiver",
            "outcome",
        )
        self.notification_queue = family.gauge(
            "notification_queue_messages", "Notifications waiting to be sent", "receiver"
        )
        self.alerts_grouped = family.counter(
            "alerts_grouped",
            "Alerts folded into a notification that summarises several (not sent one by one)",
        )
        self.alerts_duplicate = family.counter(
            "alerts_duplicate",
            "Alerts ignored because the same alert id was already notified (at-least-once replay)",
        )
        self._summary_lock = threading.Lock()
        self._summary_seen: dict[tuple[str, str, str], int] = {}

    def declare_receiver(self, receiver: str) -> None:
        """Create a receiver's series at 0 so ``rate()`` and absent-checks work before the first send."""
        for outcome in DELIVERY_OUTCOMES:
            self.webhook_deliveries.labels(receiver=receiver, outcome=outcome)
        self.notification_queue.labels(receiver=receiver).set(0)


def observe_call(metrics: AlerterMetrics, call: CallRecord) -> None:
    if call.method != "INVITE":
        metrics.non_invite.inc()
        return
    metrics.calls.labels(
        category=_bounded(call.category, CALL_CATEGORIES), status_class=status_class(call.final_status)
    ).inc()
    if call.mos is not None:
        metrics.call_mos.observe(call.mos)
    if call.post_dial_delay_ms is not None:
        metrics.post_dial_delay.observe(call.post_dial_delay_ms / 1000.0)
    if call.setup_time_ms is not None:
        metrics.setup_time.observe(call.setup_time_ms / 1000.0)


def observe_stream(metrics: AlerterMetrics, stream: StreamRecord) -> None:
    metrics.streams.inc()
    metrics.stream_jitter.observe(stream.mean_jitter_ms / 1000.0)
    if stream.expected > 0:
        metrics.stream_loss.observe(min(max(stream.lost, 0) / stream.expected, 1.0))


def observe_alert(metrics: AlerterMetrics, alert: Alert) -> None:
    # Rule ids are code-defined; clip so a rogue producer cannot mint long label values.
    metrics.alerts.labels(rule=alert.rule[:64], severity=_bounded(alert.severity, SEVERITIES)).inc()


def observe(metrics: AlerterMetrics, record: CallRecord | StreamRecord | Alert) -> None:
    """Update the metrics from one detector output, whichever kind it is."""
    if isinstance(record, CallRecord):
        observe_call(metrics, record)
    elif isinstance(record, StreamRecord):
        observe_stream(metrics, record)
    else:
        observe_alert(metrics, record)


def export_summary(metrics: AlerterMetrics, summary: Summary) -> None:
    """Add an analysis summary's counters (frames, errors/skipped/dropped by reason).

    A summary holds running totals of its ``source``; Prometheus counters only
    go up, so only the growth since the last summary of the same source is
    added. A total that shrank means the source restarted: it counts anew.
    """
    export_counters(
        metrics,
        summary.source,
        frames=summary.frames,
        errors=summary.errors,
        skipped=summary.skipped,
        dropped=summary.dropped,
    )


def export_counters(
    metrics: AlerterMetrics,
    source: str,
    *,
    frames: int,
    errors: Mapping[str, int],
    skipped: Mapping[str, int],
    dropped: Mapping[str, int],
) -> None:
    """Add a source's running totals (a collector's counters, or a summary's); only growth is added."""
    families: Mapping[str, tuple[Counter, Mapping[str, int]]] = {
        "errors": (metrics.parse_errors, errors),
        "skipped": (metrics.skipped, skipped),
        "dropped": (metrics.dropped, dropped),
    }
    with metrics._summary_lock:
        seen = metrics._summary_seen
        delta = _growth(seen, (source, "frames", ""), frames)
        if delta:
            metrics.packets_captured.inc(delta)
        for family, (counter, values) in families.items():
            for reason, value in values.items():
                delta = _growth(seen, (source, family, reason), value)
                if delta:
                    counter.labels(reason=_reason(reason)).inc(delta)


def export_capture_stats(
    metrics: AlerterMetrics, source: str, *, received: int, kernel_dropped: int, if_dropped: int, ours: int
) -> None:
    """Add a live capture's cumulative statistics (libpcap's ``ps_recv``/``ps_drop``/``ps_ifdrop``).

    ``ours`` is what our own queues refused after the kernel handed a frame
    over. Like :func:`export_summary`, totals are turned into increments.
    """
    with metrics._summary_lock:
        seen = metrics._summary_seen
        for key, value in (
            ("captured", received),
            ("kernel", kernel_dropped),
            ("interface", if_dropped),
            ("ours", ours),
        ):
            delta = _growth(seen, (source, "capture", key), value)
            if not delta:
                continue
            if key == "captured":
                metrics.packets_captured.inc(delta)
            else:
                metrics.packets_dropped.labels(where=key).inc(delta)


def _growth(seen: dict[tuple[str, str, str], int], key: tuple[str, str, str], value: int) -> int:
    before = seen.get(key, 0)
    seen[key] = value
    return value - before if value >= before else value
