"""Settings of ``callqual collector`` (flags over ``CALLQUAL_COLLECTOR_*``), and its exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from callqual.transport.settings import KafkaSettings

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_UNREADABLE = 3
EXIT_TRUNCATED = 4
#: The run finished but some events never reached the broker (counted in the last log line)
EXIT_LOST = 5


class CollectorServiceSettings(BaseSettings):
    """Settings of ``callqual collector``: flags override ``CALLQUAL_COLLECTOR_*`` variables.

    Connection details (SASL, TLS, client tuning) stay in :class:`KafkaSettings`
    (``CALLQUAL_KAFKA_*``); the three that a user types on a command line
    (servers, prefix, partitions) can be given here too and win.
    """

    model_config = SettingsConfigDict(env_prefix="CALLQUAL_COLLECTOR_", extra="ignore")

    pcap: Path | None = None
    interface: str | None = None
    bootstrap_servers: str | None = None
    topic_prefix: str | None = None
    partitions: int | None = Field(default=None, ge=1)
    #: Bounded local queue: events waiting for the broker; past it events are dropped and counted
    buffer_max_messages: int = Field(default=1_000_000, ge=1)
    #: How long an event may wait for a reachable broker before it is counted as failed
    delivery_timeout_s: float = Field(default=900.0, gt=0)
    #: At shutdown, how long to wait for the queue to drain
    flush_timeout_s: float = Field(default=30.0, ge=0)
    #: Replay a capture file at this multiple of its real time (0: as fast as possible)
    pace: float = Field(default=0.0, ge=0)
    #: Capture seconds between watermark markers
    marker_interval_s: float = Field(default=1.0, gt=0)
    #: Wall seconds between progress log lines
    stats_interval_s: float = Field(default=10.0, gt=0)
    heuristic_rtp: bool = False
    #: Capture seconds between interval reports of live streams, and between reports of a call
    #: whose media flows one way only (0: off); see ``CollectorConfig``
    report_interval_s: float = Field(default=10.0, gt=0)
    quiet_report_interval_s: float = Field(default=2.0, ge=0)
    log_level: str = "INFO"
    #: Serve /metrics and /healthz here (Prometheus: packets captured/dropped, parse errors by
    #: reason, Kafka producer queue and errors); None: no HTTP server
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    def kafka(self) -> KafkaSettings:
        overrides: dict[str, Any] = {
            "buffer_max_messages": self.buffer_max_messages,
            # Events are a few hundred bytes; let the message count be the binding bound.
            "buffer_max_kbytes": min(max(64 * 1024, self.buffer_max_messages * 2), 2**31 - 1),
            "delivery_timeout_ms": int(self.delivery_timeout_s * 1000),
            "client_id": "callqual-collector",
        }
        if self.bootstrap_servers is not None:
            overrides["bootstrap_servers"] = self.bootstrap_servers
        if self.topic_prefix is not None:
            overrides["topic_prefix"] = self.topic_prefix
        if self.partitions is not None:
            overrides["partitions"] = self.partitions
        return KafkaSettings(**overrides)
