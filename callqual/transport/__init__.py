"""Message transport: the seam between the services and the bus that connects them.

Only the pure parts are re-exported here. The Kafka adapters live in
:mod:`callqual.transport.kafka` and are imported explicitly by the code that
wires a deployment, so importing a service never loads librdkafka.
"""

from callqual.transport.base import EventSink, EventSource, Message, TransportError
from callqual.transport.inprocess import InProcessBus, InProcessSink, InProcessSource
from callqual.transport.settings import KafkaSettings
from callqual.transport.topics import DEFAULT_TOPIC_PREFIX, TOPICS, Topics

__all__ = [
    "DEFAULT_TOPIC_PREFIX",
    "TOPICS",
    "EventSink",
    "EventSource",
    "InProcessBus",
    "InProcessSink",
    "InProcessSource",
    "KafkaSettings",
    "Message",
    "Topics",
    "TransportError",
]
