"""Delivers notifications over HTTP: the adapter around the pure payload and retry code.

One :class:`ReceiverWorker` per receiver, each with its own bounded queue and
thread, so a Slack outage cannot hold back the webhook. ``submit`` never
blocks the alerter's consume loop: a full queue drops the notification and
counts it (``callqual_webhook_deliveries_total{outcome="dropped"}``).

The HTTP client, the clocks and the sleep are injected, so tests drive
retries and outages deterministically; in production they are an
``httpx.Client``, ``time.monotonic``, ``time.time`` and an interruptible wait
(shutdown does not have to sit out a 60 s backoff).

When attempts run out (or the alerter stops with notifications still queued)
the notification goes to the dead-letter sink: the Kafka dead-letter topic in
production, where it can be inspected and replayed, instead of being lost.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, SecretStr

from callqual.alerter.notification import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Notification,
    alertmanager_payload,
    encode,
    sign,
    slack_payload,
    webhook_payload,
)
from callqual.alerter.retry import RetryPolicy, decide
from callqual.observability.metrics import AlerterMetrics
from callqual.transport import EventSink

log = logging.getLogger(__name__)

ReceiverKind = Literal["webhook", "slack", "alertmanager"]
USER_AGENT = "callqual-alerter/1"


@dataclass(frozen=True, slots=True)
class Receiver:
    """Where notifications go. ``url`` is a secret for Slack (the URL is the credential)."""

    name: str
    kind: ReceiverKind
    url: SecretStr
    #: HMAC-SHA256 key of the generic webhook
    secret: SecretStr | None = None
    #: The web UI (``CALLQUAL_UI_BASE_URL``): payloads link each alert to its call's page
    ui_base_url: str | None = None

    def request(self, n: Notification, now_epoch: float) -> tuple[str, dict[str, str], bytes]:
        """URL, headers and body of one attempt; only the signature timestamp changes between attempts."""
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        doc: Any
        if self.kind == "webhook":
            doc = webhook_payload(n, ui_base_url=self.ui_base_url)
        elif self.kind == "slack":
            doc = slack_payload(n, ui_base_url=self.ui_base_url)
        else:
            doc = alertmanager_payload(n)
        body = encode(doc)
        if self.kind == "webhook":
            headers[IDEMPOTENCY_HEADER] = n.notification_id
            if self.secret is not None:
                ts = int(now_epoch)
                headers[TIMESTAMP_HEADER] = str(ts)
                headers[SIGNATURE_HEADER] = sign(self.secret.get_secret_value().encode(), ts, body)
        url = self.url.get_secret_value()
        if self.kind == "alertmanager":
            url = url.rstrip("/") + "/api/v2/alerts"
        return url, headers, body


class DeadLetter(BaseModel):
    """A notification the alerter gave up on, as written to the dead-letter topic."""

    kind: Literal["alerter_dead_letter"] = "alerter_dead_letter"
    receiver: str
    receiver_kind: ReceiverKind
    notification_id: str
    rule: str
    severity: str
    count: int
    attempts: int
    reason: str
    #: The generic payload (never the Slack URL or any secret), so it can be replayed
    payload: dict[str, Any]


@dataclass(slots=True)
class DeliveryResult:
    delivered: bool
    attempts: int
    reason: str


class ReceiverWorker:
    """A bounded queue and a thread delivering to one receiver with retries."""

    def __init__(
        self,
        receiver: Receiver,
        client: httpx.Client,
        metrics: AlerterMetrics,
        *,
        policy: RetryPolicy | None = None,
        dead_letter: EventSink | None = None,
        dead_letter_topic: str = "callqual.deadletter",
        queue_size: int = 1000,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.receiver = receiver
        self.client = client
        self.metrics = metrics
        self.policy = policy or RetryPolicy()
        self.dead_letter = dead_letter
        self.dead_letter_topic = dead_letter_topic
        self.queue_size = queue_size
        self._monotonic = monotonic
        self._wall = wall
        self._rand = rand
        self._queue: collections.deque[Notification] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self._busy = False
        self._thread: threading.Thread | None = None
        metrics.declare_receiver(receiver.name)

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _count(self, outcome: str, n: int = 1) -> None:
        self.metrics.webhook_deliveries.labels(receiver=self.receiver.name, outcome=outcome).inc(n)

    def _gauge(self) -> None:
        self.metrics.notification_queue.labels(receiver=self.receiver.name).set(len(self._queue))

    # -- producer side -------------------------------------------------------

    def submit(self, n: Notification) -> bool:
        """Queue ``n``; ``False`` (counted as dropped) when the queue is full. Never blocks."""
        with self._cond:
            if len(self._queue) >= self.queue_size:
                self._count("dropped")
                log.warning("receiver %s: queue full, notification %s dropped", self.receiver.name, n.rule)
                return False
            self._queue.append(n)
            self._gauge()
            self._cond.notify()
        return True

    def idle(self) -> bool:
        """Nothing queued and nothing being sent."""
        with self._cond:
            return not self._queue and not self._busy

    # -- delivery --------------------------------------------------------------

    def deliver(self, n: Notification) -> DeliveryResult:
        """Send ``n`` now, retrying per the policy; dead-letter it if that fails. Blocking."""
        started = self._monotonic()
        attempt = 0
        reason = ""
        while True:
            attempt += 1
            url, headers, body = self.receiver.request(n, self._wall())
            status: int | None
            retry_after = None
            try:
                response = self.client.post(url, content=body, headers=headers)
                status = response.status_code
                retry_after = response.headers.get("Retry-After")
            except httpx.HTTPError as exc:
                # The exception text can hold the URL, and a Slack URL is a secret: log its type only.
                status = None
                log.info("receiver %s: attempt %d: %s", self.receiver.name, attempt, type(exc).__name__)
            decision = decide(
                self.policy,
                attempt=attempt,
                elapsed_s=self._monotonic() - started,
                status=status,
                retry_after=retry_after,
                now_epoch=self._wall(),
                rand=self._rand,
            )
            if decision.reason == "ok":
                self._count("delivered")
                return DeliveryResult(True, attempt, "ok")
            reason = decision.reason
            if not decision.retry or self._stop.is_set():
                break
            self._count("retried")
            self._sleep(decision.delay_s)
            if self._stop.is_set():
                reason = "shutdown"
                break
        log.warning(
            "receiver %s: giving up on notification %s after %d attempt(s): %s",
            self.receiver.name,
            n.notification_id,
            attempt,
            reason,
        )
        self._count("failed")
        self._dead_letter(n, attempt, reason)
        return DeliveryResult(False, attempt, reason)

    def _dead_letter(self, n: Notification, attempts: int, reason: str) -> None:
        if self.dead_letter is None:
            return
        letter = DeadLetter(
            receiver=self.receiver.name,
            receiver_kind=self.receiver.kind,
            notification_id=n.notification_id,
            rule=n.rule,
            severity=n.severity,
            count=n.count,
            attempts=attempts,
            reason=reason,
            payload=webhook_payload(n, ui_base_url=self.receiver.ui_base_url),
        )
        self.dead_letter.emit(self.dead_letter_topic, n.notification_id, letter)
        self._count("dead_lettered")

    # -- thread ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"alerter-{self.receiver.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if not self._queue:
                    return
                n = self._queue.popleft()
                self._busy = True
                self._gauge()
            try:
                self.deliver(n)
            except Exception:
                log.exception("receiver %s: unexpected error delivering a notification", self.receiver.name)
                self._count("failed")
                self._dead_letter(n, 0, "internal_error")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the queue to empty; ``True`` if it did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Drain for up to ``timeout`` s, then stop; what is left is dead-lettered, not lost."""
        self.drain(timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(timeout, 1.0))
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            self._gauge()
        for n in left:
            self._count("failed")
            self._dead_letter(n, 0, "shutdown")


class Notifier:
    """Fans each notification out to every receiver's worker."""

    def __init__(self, workers: list[ReceiverWorker]) -> None:
        self.workers = workers

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def submit(self, n: Notification) -> None:
        for w in self.workers:
            w.submit(n)

    def idle(self) -> bool:
        return all(w.idle() for w in self.workers)

    def close(self, timeout: float = 5.0) -> None:
        for w in self.workers:
            w.close(timeout)
