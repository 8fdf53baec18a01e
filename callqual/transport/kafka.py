"""Kafka adapters for the transport seam: the only module that imports a Kafka client.

Wire format is the pydantic models' JSON (``model_dump_json``), UTF-8, with
the Call-ID as key so all of a call's events land on one partition and are
consumed in order by one detector instance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage

# NewTopic: documented public path, re-exported without being declared so.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from pydantic import BaseModel

from callqual.transport.base import (
    Headers,
    Message,
    MessageRefusedError,
    Rebalance,
    SinkStats,
    TransportError,
)
from callqual.transport.codec import encode
from callqual.transport.settings import KafkaSettings

log = logging.getLogger(__name__)


#: At most one log line per this many seconds about transient broker errors
ERROR_LOG_EVERY_S = 5.0
#: Serve delivery reports every this many sends (each poll costs a lock round-trip)
_POLL_EVERY = 256
#: Producer refusals that concern one message, not the producer
_MESSAGE_ERRORS = {KafkaError.MSG_SIZE_TOO_LARGE: "too_large"}


class KafkaEventSink:
    """:class:`~callqual.transport.base.EventSink` on an idempotent ``confluent_kafka.Producer``.

    ``emit`` never blocks: when librdkafka's bounded queue is full (the broker
    is slow or gone) the message is dropped and counted, because stalling the
    capture loop would lose far more packets than the dropped events.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        producer: Producer | None = None,
        client_logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.stats = SinkStats()
        # Delivery callbacks run in whichever thread calls poll/flush.
        self._lock = threading.Lock()
        self._closed = False
        self._unpolled = 0
        self._next_error_log = 0.0
        self._producer = producer or Producer(
            _with_logger(settings.producer_config(), client_logger, self._on_error)
        )

    def emit(self, topic: str, key: str | None, value: BaseModel) -> None:
        if self._closed:
            raise TransportError("emit() on a closed sink")
        if self.stats.fatal:
            # Unlike back-pressure this does not pass: the owner must rebuild the sink.
            raise TransportError(f"kafka producer is in a fatal state: {self.stats.last_error}")
        payload = encode(value)
        try:
            self._producer.produce(
                topic,
                value=payload,
                key=key.encode() if key is not None else None,
                on_delivery=self._on_delivery,
            )
        except BufferError:
            with self._lock:
                self.stats.dropped += 1
            # Serve callbacks so the queue drains for the next emit.
            self._producer.poll(0)
            return
        with self._lock:
            self.stats.emitted += 1
        self._producer.poll(0)

    def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: str | None = None,
        headers: Headers = (),
        partition: int | None = None,
        progress: bool = False,
    ) -> bool:
        if self._closed:
            raise TransportError("send() on a closed sink")
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        if not progress:
            extra["on_delivery"] = self._on_delivery
        try:
            self._producer.produce(
                topic,
                value=value,
                key=key.encode() if key is not None else None,
                headers=list(headers),
                **extra,
            )
        except BufferError:
            if not progress:
                with self._lock:
                    self.stats.dropped += 1
            self._producer.poll(0)
            return False
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            reason = _MESSAGE_ERRORS.get(err.code()) if isinstance(err, KafkaError) else None
            if reason is None:
                raise TransportError(f"kafka refused a message for {topic}: {exc}") from exc
            raise MessageRefusedError(reason, str(exc)) from exc
        if not progress:
            with self._lock:
                self.stats.emitted += 1
        self._unpolled += 1
        if self._unpolled >= _POLL_EVERY:
            self._unpolled = 0
            self._producer.poll(0)
        return True

    def partitions(self, topic: str) -> int:
        meta = self._producer.list_topics(topic, timeout=30)
        return len(meta.topics[topic].partitions)

    def in_flight(self) -> int:
        return 0 if self._closed else len(self._producer)

    def service(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        return self._producer.flush(timeout)

    def close(self, timeout: float = 10.0) -> int:
        """Flush for up to ``timeout`` s, purge the rest (counted as failed), release the client.

        Returns how many messages were still undelivered. Closing explicitly
        matters: the producer's callbacks reference the sink, so an abandoned
        one lives until the cycle collector runs, reconnecting all the while.
        """
        if self._closed:
            return 0
        pending = self._producer.flush(timeout)
        if pending:
            # Otherwise close() would wait up to delivery.timeout.ms for them.
            self._producer.purge()
            self._producer.flush(0)
        close = getattr(self._producer, "close", None)  # absent from older confluent-kafka releases
        if close is not None:
            close()
        self._closed = True
        return pending

    def _on_delivery(self, err: KafkaError | None, msg: KafkaMessage) -> None:
        with self._lock:
            if err is None:
                self.stats.delivered += 1
            else:
                self.stats.failed += 1
                self.stats.last_error = err.str()
        if err is not None:
            log.warning("kafka delivery to %s failed: %s", msg.topic(), err.str())

    def _on_error(self, err: KafkaError) -> None:
        # Transient errors (broker down, all brokers down) are retried by
        # librdkafka; only fatal ones (e.g. idempotence state lost) end the producer.
        with self._lock:
            self.stats.broker_errors += 1
            self.stats.last_error = err.str()
            self.stats.fatal = self.stats.fatal or err.fatal()
        if err.fatal():
            log.error("fatal kafka producer error: %s", err.str())
            return
        # While the broker is away librdkafka reports every reconnect attempt: one line per
        # ERROR_LOG_EVERY_S says the same, with how many were folded into it.
        now = time.monotonic()
        if now >= self._next_error_log:
            self._next_error_log = now + ERROR_LOG_EVERY_S
            log.warning(
                "kafka producer error (retrying): %s",
                err.str(),
                extra={"error": err.str(), "errors_so_far": self.stats.broker_errors},
            )


def _with_logger(conf: dict[str, Any], logger: logging.Logger | None, error_cb: Any = None) -> dict[str, Any]:
    """librdkafka's own log lines through ``logger`` (stderr stays JSON lines), critical ones only.

    Without a logger the client logs errors only, on stderr. Errors reach ``error_cb``.
    """
    out: dict[str, Any] = {**conf, "log_level": 3 if logger is None else 2}
    if logger is not None:
        out["logger"] = logger
    if error_cb is not None:
        out["error_cb"] = error_cb
    return out


class KafkaEventSource:
    """:class:`~callqual.transport.base.EventSource` on a ``confluent_kafka.Consumer`` in a group.

    Offsets are stored only by :meth:`ack`, and librdkafka's auto-commit only
    commits stored offsets: a message polled but not acknowledged before a
    crash or rebalance is delivered again (at-least-once).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        *,
        group_id: str | None = None,
        consumer: Consumer | None = None,
    ) -> None:
        if not topics:
            raise ValueError("a source needs at least one topic")
        self.settings = settings
        self.topics = tuple(topics)
        self.errors = 0
        #: Acks refused because the partition had moved to another member (it will redeliver)
        self.stale_acks = 0
        self._consumer = consumer or Consumer({**settings.consumer_config(group_id), "log_level": 3})
        self._consumer.subscribe(list(self.topics))
        self._closed = False

    def poll(self, timeout: float) -> Message | None:
        msg = self._consumer.poll(timeout)
        if msg is None:
            return None
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return None
            if err.fatal():
                raise TransportError(f"fatal kafka consumer error: {err.str()}")
            self.errors += 1
            log.warning("kafka consumer error: %s", err.str())
            return None
        return _message_of(msg)

    def ack(self, message: Message) -> None:
        # The committed offset is the *next* one to read, hence +1.
        try:
            self._consumer.store_offsets(
                offsets=[TopicPartition(message.topic, message.partition, message.offset + 1)]
            )
        except KafkaException as exc:
            # Typically the partition was revoked by a rebalance: its new owner
            # resumes from the last committed offset and re-reads this message.
            self.stale_acks += 1
            log.info("offset not stored for %s[%d]@%d: %s", *_pos(message), exc)

    def commit(self) -> None:
        """Commit stored offsets now (e.g. before a planned stop) instead of at the next interval."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            # Nothing stored since the last commit is not an error.
            if not (isinstance(err, KafkaError) and err.code() == KafkaError._NO_OFFSET):
                raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Consumer.close() commits the stored offsets and leaves the group.
        self._consumer.close()


def _message_of(msg: KafkaMessage) -> Message:
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise TransportError("kafka returned a message without a position")
    raw_key = msg.key()
    ts_type, ts = msg.timestamp()
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=raw_key.decode(errors="replace") if raw_key is not None else None,
        value=msg.value() or b"",
        timestamp_ms=ts if ts_type != 0 else None,  # 0 = TIMESTAMP_NOT_AVAILABLE
        # A header without a value carries nothing we read: left out.
        headers=_headers_of(msg),
    )


def _headers_of(msg: KafkaMessage) -> Headers:
    """Consumed headers come as a list of ``(str, bytes | None)``; a header without a value is left out."""
    raw: Any = msg.headers() or []
    return tuple((str(k), v) for k, v in raw if isinstance(v, bytes))


class KafkaPartitionedSource:
    """:class:`~callqual.transport.base.PartitionedSource` on a ``confluent_kafka.Consumer``.

    librdkafka's auto-commit commits only what :meth:`store` stored, so a member that
    crashes resumes (or its successor does) where the caller said nothing is still needed.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        group_id: str,
        *,
        on_assign: Rebalance,
        on_revoke: Rebalance,
        client_logger: logging.Logger | None = None,
    ) -> None:
        self.topic = topic
        self.errors = 0
        self._consumer = Consumer(_with_logger(settings.consumer_config(group_id), client_logger))
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._consumer.subscribe(
            [topic],
            on_assign=lambda _c, tps: on_assign([tp.partition for tp in tps]),
            on_revoke=lambda _c, tps: on_revoke([tp.partition for tp in tps]),
            on_lost=lambda _c, tps: on_revoke([tp.partition for tp in tps]),
        )
        self._closed = False

    def poll_batch(self, max_messages: int, timeout: float) -> list[Message]:
        out: list[Message] = []
        for msg in self._consumer.consume(num_messages=max_messages, timeout=timeout):
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise TransportError(f"fatal kafka consumer error: {err.str()}")
                if err.code() != KafkaError._PARTITION_EOF:
                    self.errors += 1
                    log.warning("kafka consumer error: %s", err.str())
                continue
            out.append(_message_of(msg))
        return out

    def store(self, positions: Mapping[int, int], *, commit: bool = False) -> None:
        offsets = [TopicPartition(self.topic, p, o) for p, o in positions.items()]
        if not offsets:
            return
        try:
            self._consumer.store_offsets(offsets=offsets)
            if commit:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Typically revoked meanwhile: the new owner replays from the last commit.
            log.info("offsets not stored: %s", exc)

    def lag(self) -> int | None:
        behind = 0
        try:
            for tp in self._consumer.assignment():
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                (pos,) = self._consumer.position([tp])
                if high >= 0 and pos.offset >= 0:
                    behind += max(0, high - pos.offset)
        except KafkaException as exc:  # best-effort: a rebalance can pull partitions away mid-way
            log.debug("consumer lag unavailable: %s", exc)
            return None
        return behind

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._consumer.close()


def _pos(message: Message) -> tuple[str, int, int]:
    return message.topic, message.partition, message.offset


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient({**settings.as_librdkafka_dict(), "log_level": 3})


def ensure_service_topics(settings: KafkaSettings, topics: Iterable[str]) -> list[str]:
    """What every service does at start-up: create its topics (idempotent), quietly.

    The admin client gets the ``callqual.kafka`` logger, so librdkafka's own lines go
    through the services' structured logs instead of raw on stderr.
    """
    conf: dict[str, Any] = {  # librdkafka takes a Logger object here, which its stubs do not admit
        **settings.as_librdkafka_dict(),
        "logger": logging.getLogger("callqual.kafka"),
        "log_level": 2,
    }
    admin = AdminClient(conf)
    return ensure_topics(admin, topics, settings.partitions, settings.replication)


def ensure_topics(
    admin: AdminClient,
    topics: Iterable[str],
    partitions: int,
    replication: int,
    *,
    timeout: float = 30.0,
) -> list[str]:
    """Create the missing ones among ``topics``; return the names actually created.

    Idempotent so every service can call it at start-up without coordination.
    An existing topic is left as it is, even with another partition count:
    changing partitions re-maps keys, which is an operator's decision.
    """
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return []
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        # Unreachable, refused TLS or refused credentials: the client says which in its message.
        raise TransportError(f"cannot read the cluster's topics: {exc}") from exc
    missing = [t for t in wanted if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in missing],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            # Lost a race with another service creating the same topic: fine.
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise TransportError(f"could not create topic {name}: {exc}") from exc
        created.append(name)
    _wait_until_visible(admin, created, timeout)
    return sorted(created)


def _wait_until_visible(admin: AdminClient, topics: list[str], timeout: float) -> None:
    """Block until the new topics appear in metadata.

    CreateTopics returns before the broker's metadata cache has them; a
    producer or consumer started in that window would see an unknown topic.
    """
    deadline = time.monotonic() + timeout
    pending = set(topics)
    while pending:
        metadata = admin.list_topics(timeout=max(deadline - time.monotonic(), 1.0)).topics
        pending = {t for t in pending if t not in metadata or metadata[t].error is not None}
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TransportError(f"topics created but not visible after {timeout}s: {sorted(pending)}")
        time.sleep(0.1)
