"""The store service's Prometheus metrics, defined once on their own registry (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["StoreMetrics"]


class StoreMetrics:
    """The store service's metrics, on their own registry (``/metrics``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages_consumed = Counter(
            "callqual_store_messages_consumed", "Messages read from Kafka", ["topic"], registry=r
        )
        self.rows_written = Counter(
            "callqual_store_rows_written", "Records written, by kind", ["kind"], registry=r
        )
        self.sip_messages_over_bound = Counter(
            "callqual_store_sip_messages_over_bound",
            "SIP messages past the per-call bound, not kept",
            registry=r,
        )
        self.batches = Counter("callqual_store_batches", "Transactions committed", registry=r)
        self.db_errors = Counter(
            "callqual_store_db_errors",
            "Failed writes: unavailable (retried), rejected (dead-lettered), conflict (another"
            " member made the transaction fail: written again), partition_race (retried)",
            ["kind"],
            registry=r,
        )
        self.db_up = Gauge("callqual_store_db_up", "1 while the last write succeeded", registry=r)
        self.pending = Gauge("callqual_store_pending_messages", "Consumed, not yet committed", registry=r)
        self.undecodable = Counter("callqual_store_undecodable", "Messages that did not decode", registry=r)
        self.dead_lettered = Counter(
            "callqual_store_dead_lettered", "Messages sent to dead-letter", registry=r
        )
        self.write_seconds = Histogram(
            "callqual_store_write_seconds",
            "Time to write one batch",
            registry=r,
            buckets=(0.01, 0.05, 0.2, 1, 5),
        )
        self.consumer_lag_seconds = Gauge(
            "callqual_consumer_lag_seconds", "Wall time minus the message timestamp", ["topic"], registry=r
        )
        self.partitions_dropped = Counter(
            "callqual_store_partitions_dropped", "Daily partitions dropped by retention", registry=r
        )
        self.rows_expired = Counter("callqual_store_rows_expired", "Rows deleted by retention", registry=r)
        self.batches_in_flight = Gauge(
            "callqual_store_batches_in_flight", "Batches handed to the writer, not yet committed", registry=r
        )
        self.writer_full = Counter(
            "callqual_store_writer_full_waits",
            "Times the loop stopped reading because writes_in_flight batches were not yet committed",
            registry=r,
        )
