"""The alerter service: consume detector output, keep metrics, send notifications.

:class:`AlerterService` is transport-agnostic: it reads an
:class:`~callqual.transport.EventSource` (Kafka in production, the in-process
bus embedded or in tests) and is ticked with a monotonic clock, so the same
object serves ``callqual alerter`` and the tests. :class:`MetricsServer` is
the HTTP adapter for Prometheus (``/metrics``) and orchestrators
(``/healthz``). :func:`feed_report` pushes an ``analyze_file`` result through
the same path a Kafka message takes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Literal, Protocol

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field, SecretStr, TypeAdapter, ValidationError

from callqual.alerter.grouping import Grouper, GroupingPolicy
from callqual.alerter.metrics import AlerterMetrics, export_summary, observe
from callqual.alerter.notification import Notification
from callqual.alerter.retry import RetryPolicy
from callqual.alerter.sender import Notifier, Receiver, ReceiverWorker
from callqual.alerter.settings import AlerterSettings
from callqual.schemas import Alert, AnalysisReport, CallRecord, CallStateUpdate, StreamRecord
from callqual.transport import TOPICS, EventSink, EventSource, Message, Topics, TransportError
from callqual.transport.codec import UnserialisableError

log = logging.getLogger(__name__)

Record = CallRecord | StreamRecord | Alert | CallStateUpdate


class UndecodableMessage(BaseModel):
    """A consumed message the alerter could not decode, as written to the dead-letter topic."""

    kind: Literal["alerter_undecodable"] = "alerter_undecodable"
    topic: str
    partition: int
    offset: int
    key: str | None
    #: ``alerter.undecodable`` or ``alerter.apply_failed``
    reason: str
    #: The exception, type first
    error: str = ""
    value: str


#: Call and stream records share topics; ``kind`` says which (a non-object or unknown kind fails).
_RECORD: TypeAdapter[CallRecord | StreamRecord | CallStateUpdate] = TypeAdapter(
    Annotated[CallRecord | StreamRecord | CallStateUpdate, Field(discriminator="kind")]
)
#: What applying a schema-valid record can still raise on odd values (never a transport error).
_APPLY_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError)


def _position(message: Message) -> tuple[str, int, int]:
    return message.topic, message.partition, message.offset


class AlerterService:
    """Detector output in, metrics and notifications out."""

    def __init__(
        self,
        metrics: AlerterMetrics,
        notifier: Notifier,
        *,
        grouper: Grouper | None = None,
        topics: Topics = TOPICS,
        dead_letter: EventSink | None = None,
        call_cache_size: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.notifier = notifier
        self.grouper = grouper or Grouper()
        self.topics = topics
        self.dead_letter = dead_letter
        self.record_topics = record_topics(topics)
        self._monotonic = monotonic
        self._wall = wall
        self._calls: OrderedDict[str, CallRecord] = OrderedDict()
        #: Calls in flight by their latest state update (bounded like the call cache), and the
        #: answered ones among them: ``callqual_active_calls``. A call's record removes it.
        self._live: OrderedDict[str, CallStateUpdate] = OrderedDict()
        self._answered: set[str] = set()
        self._call_cache_size = call_cache_size
        self._lock = threading.Lock()
        #: Monotonic time of the last loop iteration, for /healthz
        self.heartbeat = monotonic()
        self.running = False

    # -- input ---------------------------------------------------------------

    def handle_record(self, record: Record) -> None:
        """Apply one detector output: metrics always, grouping for alerts, cache for calls."""
        with self._lock:
            if isinstance(record, Alert):
                if self.grouper.add(record, self._monotonic()):
                    observe(self.metrics, record)
                else:
                    self.metrics.alerts_duplicate.inc()
                return
            if isinstance(record, CallStateUpdate):
                self._track_live(record)
                return
            observe(self.metrics, record)
            if isinstance(record, CallRecord):
                self._forget_live(record.call_id)
            if isinstance(record, CallRecord) and self._call_cache_size:
                self._calls[record.call_id] = record
                self._calls.move_to_end(record.call_id)
                while len(self._calls) > self._call_cache_size:
                    self._calls.popitem(last=False)

    def _track_live(self, update: CallStateUpdate) -> None:
        self._live[update.call_id] = update
        self._live.move_to_end(update.call_id)
        if update.state == "answered":
            self._answered.add(update.call_id)
        while len(self._live) > max(1, self._call_cache_size):
            self._forget_live(next(iter(self._live)))
        self.metrics.active_calls.set(len(self._answered))

    def _forget_live(self, call_id: str) -> None:
        if self._live.pop(call_id, None) is not None:
            self._answered.discard(call_id)
            self.metrics.active_calls.set(len(self._answered))

    def handle(self, message: Message) -> None:
        """Decode one transport message by topic (and ``kind`` on the calls topic), then apply it."""
        self.metrics.messages_consumed.labels(topic=message.topic).inc()
        if message.timestamp_ms is not None:
            lag = max(0.0, self._wall() - message.timestamp_ms / 1000.0)
            self.metrics.consumer_lag_seconds.labels(topic=message.topic).set(lag)
        try:
            record = self._decode(message)
        except ValidationError as exc:  # not JSON, not UTF-8, not an object, unknown kind, bad fields
            self._undecodable(message, "alerter.undecodable", exc)
            return
        if record is None:
            return
        try:
            self.handle_record(record)
        except _APPLY_ERRORS as exc:
            # Valid by the schema yet refused by a metric or the grouper: a defect to fix, but one
            # message must not stop the alerts behind it. Logged with its traceback, counted, kept.
            log.exception("message not applied on %s[%d]@%d", *_position(message))
            self._undecodable(message, "alerter.apply_failed", exc)

    def _decode(self, message: Message) -> Record | None:
        if message.topic == self.topics.alerts:
            return Alert.model_validate_json(message.value)
        if message.topic in self.record_topics:
            return _RECORD.validate_json(message.value)
        return None

    def _undecodable(self, message: Message, reason: str, exc: Exception) -> None:
        self.metrics.parse_errors.labels(reason=reason).inc()
        log.warning("%s: message on %s[%d]@%d dead-lettered", reason, *_position(message))
        if self.dead_letter is None:
            return
        letter = UndecodableMessage(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            reason=reason,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            value=message.value[:65536].decode(errors="replace"),
        )
        try:
            self.dead_letter.emit(self.topics.deadletter, message.key, letter)
        except (UnserialisableError, TransportError) as dl_exc:
            self.metrics.parse_errors.labels(reason="alerter.dead_letter_failed").inc()
            log.error("dead letter not written: %s", dl_exc)

    # -- output --------------------------------------------------------------

    def _with_calls(self, n: Notification) -> Notification:
        calls = {
            a.call_id: self._calls[a.call_id] for a in n.alerts if a.call_id and a.call_id in self._calls
        }
        return replace(n, calls=calls) if calls else n

    def tick(self) -> list[Notification]:
        """Send what grouping says is due now; returns it (for tests and logs)."""
        with self._lock:
            due = [self._with_calls(n) for n in self.grouper.due(self._monotonic())]
            self.metrics.alerts_grouped.inc(sum(n.count for n in due if n.count > 1))
        for n in due:
            self.notifier.submit(n)
        return due

    def flush(self) -> list[Notification]:
        """Send everything pending now, ignoring group waits and rate limit (shutdown, end of replay)."""
        with self._lock:
            due = [self._with_calls(n) for n in self.grouper.flush(self._monotonic())]
            self.metrics.alerts_grouped.inc(sum(n.count for n in due if n.count > 1))
        for n in due:
            self.notifier.submit(n)
        return due

    def poll_timeout(self, ceiling: float) -> float:
        with self._lock:
            now = self._monotonic()
            deadline = self.grouper.next_deadline(now)
        return ceiling if deadline is None else max(0.0, min(ceiling, deadline - now))

    # -- loop ----------------------------------------------------------------

    def run(self, source: EventSource | None, stop: threading.Event, *, poll_s: float = 0.5) -> None:
        """Consume until ``stop`` is set; then flush groups into the notifier.

        With no source (a replay), only the grouping clock runs. Messages are
        acknowledged after they are applied (at-least-once); the grouper's
        de-duplication by alert id absorbs the replays that implies.
        """
        self.running = True
        try:
            while not stop.is_set():
                self.heartbeat = self._monotonic()
                timeout = self.poll_timeout(poll_s)
                if source is None:
                    stop.wait(timeout)
                else:
                    message = source.poll(timeout)
                    if message is not None:
                        self.handle(message)
                        source.ack(message)
                self.tick()
        finally:
            self.running = False
            self.flush()

    def healthy(self, max_stall_s: float = 30.0) -> bool:
        return self.running and self._monotonic() - self.heartbeat < max_stall_s


def record_topics(topics: Topics) -> tuple[str, ...]:
    """Topics carrying call records, stream records and call-state updates (where the deployment has them)."""
    optional = (getattr(topics, name, None) for name in ("streams", "call_state"))
    return (topics.calls, *(t for t in optional if isinstance(t, str)))


def feed_report(service: AlerterService, report: AnalysisReport) -> None:
    """Feed an ``analyze_file`` result into an alerter, as the detector would over Kafka.

    Records go in capture order (calls and streams, then alerts); the
    summary's error/skip/drop counters go to their metrics; calls still up
    when the capture ended set the active-calls gauge.
    """
    for call in report.calls:
        service.handle_record(call)
    for stream in report.streams:
        service.handle_record(stream)
    for alert in report.alerts:
        service.handle_record(alert)
    export_summary(service.metrics, report.summary)
    service.metrics.active_calls.set(sum(1 for c in report.calls if c.state == "answered"))


# -- wiring ------------------------------------------------------------------


def build_receivers(settings: AlerterSettings) -> list[Receiver]:
    receivers: list[Receiver] = []
    ui = settings.ui_base_url
    if settings.webhook_url:
        receivers.append(
            Receiver(
                "webhook",
                "webhook",
                SecretStr(settings.webhook_url),
                secret=settings.webhook_secret,
                ui_base_url=ui,
            )
        )
    if settings.slack_webhook_url is not None:
        receivers.append(Receiver("slack", "slack", settings.slack_webhook_url, ui_base_url=ui))
    if settings.alertmanager_url:
        receivers.append(Receiver("alertmanager", "alertmanager", SecretStr(settings.alertmanager_url)))
    return receivers


def build_service(
    settings: AlerterSettings,
    metrics: AlerterMetrics,
    *,
    client: httpx.Client | None = None,
    dead_letter: EventSink | None = None,
    topics: Topics = TOPICS,
) -> AlerterService:
    """An :class:`AlerterService` with the receivers, grouping and retry policy of ``settings``."""
    client = client or httpx.Client(timeout=settings.http_timeout_s, follow_redirects=False)
    policy = RetryPolicy(max_attempts=settings.max_attempts, retry_window_s=settings.retry_window_s)
    workers = [
        ReceiverWorker(
            r,
            client,
            metrics,
            policy=policy,
            dead_letter=dead_letter,
            dead_letter_topic=topics.deadletter,
            queue_size=settings.queue_size,
        )
        for r in build_receivers(settings)
    ]
    grouper = Grouper(
        GroupingPolicy(
            group_wait_s=settings.group_wait_s,
            group_interval_s=settings.group_interval_s,
            max_per_minute=settings.max_notifications_per_minute,
            sample_size=settings.sample_size,
        )
    )
    return AlerterService(
        metrics,
        Notifier(workers),
        grouper=grouper,
        topics=topics,
        dead_letter=dead_letter,
        call_cache_size=settings.call_cache_size,
    )


class HasRegistry(Protocol):
    """Anything whose metrics live in one registry (the alerter's, the store service's)."""

    @property
    def registry(self) -> CollectorRegistry: ...


class MetricsServer:
    """``/metrics`` (Prometheus text format) and ``/healthz`` on a loopback or any address."""

    def __init__(
        self,
        metrics: HasRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    ok = healthy()
                    self._send(200 if ok else 503, "text/plain", b"ok\n" if ok else b"stalled\n")
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # scrapes every 15 s would drown the real log lines

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="alerter-http", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(host: str, port: int) -> tuple[AlerterMetrics, MetricsServer]:
    """A fresh registry of the project's metrics, served on ``host:port`` (0: any free port).

    What the collector and detector services call for their ``--metrics-port``: the same
    metric names as the alerter's, so the dashboards need one vocabulary.
    """
    metrics = AlerterMetrics()
    return metrics, MetricsServer(metrics, host, port).start()
