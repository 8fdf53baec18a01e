"""Session-wide fixtures shared by every test package."""

from tests.kafka_broker import kafka_bootstrap  # noqa: F401  (session fixture: a real Kafka broker)
