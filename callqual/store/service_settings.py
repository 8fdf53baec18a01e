"""What ``callqual store`` is told: its settings, and the engine they name.

Apart from the service so that the CLI can read and check them (and the
members' supervisor pass them on) without the service's loop.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine

from callqual.store.engine import open_store

__all__ = ["StoreSettings", "build_engine"]


class StoreSettings(BaseSettings):
    """Settings of ``callqual store``: flags override ``CALLQUAL_STORE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CALLQUAL_STORE_", frozen=True)

    #: sqlite:///calls.db or postgresql://user:password@host/db: a secret (it holds the password)
    url: SecretStr
    group_id: str = "callqual-store"
    #: Messages per transaction: larger batches write faster, smaller ones commit offsets sooner
    batch_size: int = Field(default=1000, ge=1)
    #: A partial batch is written after this many seconds
    batch_interval_s: float = Field(default=1.0, gt=0)
    #: Batches handed to the writer thread and not yet committed (0: write in the consuming loop)
    writes_in_flight: int = Field(default=2, ge=0)
    max_messages_per_call: int = Field(default=500, ge=1)
    retention_days: int | None = Field(default=None, ge=1)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    listen_host: str = "127.0.0.1"
    port: int = Field(default=9470, ge=0, le=65535)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    #: Stop after this many seconds with no input and nothing pending (batch jobs, tests)
    exit_when_idle_s: float | None = Field(default=None, gt=0)
    #: Store processes in the consumer group, started and supervised by one ``callqual store``
    members: int = Field(default=1, ge=1, le=64)


def build_engine(settings: StoreSettings) -> Engine:
    """The store's engine without touching the database (migrations run on the first write)."""
    return open_store(settings.url.get_secret_value(), migrate=False)
