"""Kafka settings: environment, secrets, and the librdkafka properties they produce."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from callqual.transport import Topics
from callqual.transport.settings import KafkaSettings


def test_reads_the_conventional_bootstrap_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLQUAL_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    monkeypatch.setenv("CALLQUAL_KAFKA_PARTITIONS", "12")
    settings = KafkaSettings()
    assert settings.bootstrap_servers == "127.0.0.1:19092"
    assert settings.partitions == 12
    monkeypatch.setenv("CALLQUAL_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:29092")
    assert KafkaSettings().bootstrap_servers == "127.0.0.1:29092"


def test_password_only_in_the_librdkafka_dict() -> None:
    settings = KafkaSettings(
        bootstrap_servers="broker:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="callqual",
        sasl_password=SecretStr("hunter2"),
    )
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()
    conf = settings.as_librdkafka_dict()
    assert conf["sasl.password"] == "hunter2"
    assert conf["security.protocol"] == "SASL_SSL"


def test_sasl_without_credentials_is_rejected() -> None:
    with pytest.raises(ValidationError, match="sasl"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT")


def test_producer_and_consumer_guarantees() -> None:
    settings = KafkaSettings(topic_prefix="lab.")
    producer = settings.producer_config()
    assert producer["enable.idempotence"] is True
    assert producer["acks"] == "all"
    consumer = settings.consumer_config("detector")
    assert consumer["group.id"] == "detector"
    assert consumer["enable.auto.offset.store"] is False
    assert "session.timeout.ms" not in KafkaSettings(group_protocol="consumer").consumer_config()
    assert settings.topics() == Topics.with_prefix("lab.")
    assert settings.topics().all() == ("lab.sip", "lab.media", "lab.calls", "lab.alerts", "lab.deadletter")
