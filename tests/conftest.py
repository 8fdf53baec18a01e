"""Session-wide fixtures shared by every test package."""

# Session fixtures: a real Kafka broker (see tests/kafka_broker.py).
from tests.kafka_broker import kafka_bootstrap, kafka_broker  # noqa: F401

# Session fixtures: a real PostgreSQL cluster (see tests/postgres_server.py).
from tests.postgres_server import postgres_server, postgres_url  # noqa: F401
