"""The collector as a service: capture -> :class:`Collector` core -> Kafka ``events`` topic.

This is the adapter around the pure core: it owns the capture source, the
Kafka producer, signals and logs. The core is the same object ``callqual
analyze`` runs, so both transports share one analysis code path.

Wire contract with the detector service (``callqual.detector.service``):

- every collector event goes to the one ``events`` topic, keyed by its Call-ID
  (RTP/RTCP without a call: by their stream key; malformed SIP: by source), so
  a call's SIP and media share a partition and keep their emission order;
- each event carries two headers, ``seq`` (emission order of this collector run)
  and ``clock`` (the collector's capture clock at emission). With several
  partitions, the detector merges them back into emission order with these:
  the order ``callqual analyze`` applies events in, hence the same records;
- ``watermark`` markers go to *every* partition once per capture second, and an
  ``end`` marker when the capture ends (or on SIGTERM). A partition without
  recent traffic would otherwise leave the detector unable to tell whether an
  earlier event might still arrive there.

Back-pressure policy: capture never waits for the broker. librdkafka's queue is
the bounded local buffer (``buffer_max_messages``); while the broker is down
events wait there and are delivered after it returns (the idempotent producer
retries without duplicates). Past the bound an event is dropped and counted,
and an event whose delivery finally fails is counted too, so
``dropped + failed`` is exactly what the topic is missing.

The service is four modules: ``settings`` (flags, environment, exit codes),
``publisher`` (events to the topic with their ordering headers, dead
letters), ``runner`` (one capture through the core, markers, metrics) and
``serve`` (the source, the broker connection, the exit code).
"""

from callqual.collector.service.publisher import (
    EventPublisher,
    FailedFrame,
    PublishCounts,
    UnpublishedEvent,
    event_key,
)
from callqual.collector.service.runner import CollectorService
from callqual.collector.service.serve import LiveCaptureUnavailableError, frames_of, open_source, serve
from callqual.collector.service.settings import (
    EXIT_FATAL,
    EXIT_LOST,
    EXIT_OK,
    EXIT_TRUNCATED,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    CollectorServiceSettings,
)

__all__ = [
    "EXIT_FATAL",
    "EXIT_LOST",
    "EXIT_OK",
    "EXIT_TRUNCATED",
    "EXIT_UNREADABLE",
    "EXIT_USAGE",
    "CollectorService",
    "CollectorServiceSettings",
    "EventPublisher",
    "FailedFrame",
    "LiveCaptureUnavailableError",
    "PublishCounts",
    "UnpublishedEvent",
    "event_key",
    "frames_of",
    "open_source",
    "serve",
]
