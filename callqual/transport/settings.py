"""Kafka connection and tuning settings, from the environment (``CALLQUAL_KAFKA_*``).

Kept free of any Kafka client import so configuration can be loaded, printed
and validated (``callqual config``) on machines without librdkafka.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callqual.transport.topics import DEFAULT_TOPIC_PREFIX, Topics

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]


class KafkaSettings(BaseSettings):
    """Everything the Kafka adapters need; defaults suit the local single broker."""

    model_config = SettingsConfigDict(env_prefix="CALLQUAL_KAFKA_", extra="ignore", populate_by_name=True)

    #: Also read from the conventional ``KAFKA_BOOTSTRAP_SERVERS`` (what CI and the test fixture export)
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("CALLQUAL_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    client_id: str = "callqual"
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    #: Partitions per topic: the ceiling on consumer parallelism within one group
    partitions: int = Field(default=6, ge=1)
    replication: int = Field(default=1, ge=1)

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None

    # Producer: throughput over latency within a few tens of ms, since the
    # detector only acts on whole calls anyway.
    linger_ms: int = Field(default=20, ge=0)
    batch_size: int = Field(default=256 * 1024, ge=1)
    compression: Compression = "lz4"
    #: Local buffer bound; past it ``emit`` drops and counts (see KafkaEventSink)
    buffer_max_messages: int = Field(default=100_000, ge=1)
    buffer_max_kbytes: int = Field(default=256 * 1024, ge=1)
    #: How long librdkafka retries a message before reporting it failed
    delivery_timeout_ms: int = Field(default=120_000, ge=1)
    #: Largest message produced (librdkafka's message.max.bytes); set it to the topic's
    #: max.message.bytes where a cluster lowers it. A larger event is dead-lettered, not sent.
    message_max_bytes: int = Field(default=1_000_000, ge=1_000)

    # Consumer.
    group_id: str = "callqual"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    session_timeout_ms: int = Field(default=45_000, ge=1)
    max_poll_interval_ms: int = Field(default=300_000, ge=1)
    #: "consumer" is the KIP-848 protocol (brokers >= 4.0): faster, incremental rebalances
    group_protocol: Literal["classic", "consumer"] = "classic"

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and (
            self.sasl_mechanism is None or self.sasl_username is None or self.sasl_password is None
        ):
            raise ValueError(
                f"security_protocol={self.security_protocol} needs sasl_mechanism, sasl_username "
                "and sasl_password"
            )
        return self

    def topics(self) -> Topics:
        return Topics.with_prefix(self.topic_prefix)

    def as_librdkafka_dict(self) -> dict[str, Any]:
        """Connection properties shared by producer, consumer and admin client.

        The only place the SASL password is unwrapped, so it never reaches a
        repr, a log line or a settings dump.
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism is not None:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location is not None:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf

    def producer_config(self) -> dict[str, Any]:
        conf = self.as_librdkafka_dict()
        conf.update(
            {
                # Idempotence: broker-side dedup of retries, so a retry after a
                # lost ack cannot duplicate or reorder a call's events.
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": self.linger_ms,
                "batch.size": self.batch_size,
                "compression.type": self.compression,
                "queue.buffering.max.messages": self.buffer_max_messages,
                "queue.buffering.max.kbytes": self.buffer_max_kbytes,
                "delivery.timeout.ms": self.delivery_timeout_ms,
                "message.max.bytes": self.message_max_bytes,
                # Keys are Call-IDs; murmur2 matches the Java clients, so every
                # producer maps one call to the same partition.
                "partitioner": "murmur2_random",
            }
        )
        return conf

    def consumer_config(self, group_id: str | None = None) -> dict[str, Any]:
        conf = self.as_librdkafka_dict()
        conf.update(
            {
                "group.id": group_id or self.group_id,
                "group.protocol": self.group_protocol,
                "auto.offset.reset": self.auto_offset_reset,
                # At-least-once: librdkafka commits in the background, but only
                # offsets the application stored after applying a message.
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "max.poll.interval.ms": self.max_poll_interval_ms,
            }
        )
        if self.group_protocol == "classic":
            # With KIP-848 the broker owns the session timeout; the client may not set it.
            conf["session.timeout.ms"] = self.session_timeout_ms
        return conf
