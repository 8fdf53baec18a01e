"""Session-wide fixtures shared by every test package."""

# Session fixtures: a real Kafka broker (see tests/kafka_broker.py).
from tests.kafka_broker import kafka_bootstrap, kafka_broker  # noqa: F401
