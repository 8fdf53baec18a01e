"""Settings of the alerter service: one model, from flags and ``CALLQUAL_ALERTER_*`` variables.

Secrets (the webhook HMAC key, the Slack incoming-webhook URL, which is itself
the credential) are ``SecretStr`` and have no command-line flag: a flag would
show in ``ps`` and in shell history. ``repr``/``model_dump`` print them as
``**********`` so a settings dump in a log leaks nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 9469


class AlerterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLQUAL_ALERTER_", extra="ignore", frozen=True)

    #: Where alerts and call records come from; ``--replay`` implies ``inprocess``
    transport: Literal["kafka", "inprocess"] = "kafka"
    #: Analyse this capture in-process and feed its results (demo, tests, one-off reports)
    replay: Path | None = None
    #: Kafka consumer group of the alerter (several alerters in one group share the work)
    group_id: str = "callqual-alerter"

    listen_host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)

    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    alertmanager_url: str | None = None
    #: The web UI's address (shared with Grafana's links, hence no ALERTER prefix): webhook and
    #: Slack payloads then link each alert to its call's page
    ui_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CALLQUAL_UI_BASE_URL", "ui_base_url")
    )

    group_wait_s: float = Field(default=10.0, ge=0)
    group_interval_s: float = Field(default=300.0, gt=0)
    max_notifications_per_minute: float = Field(default=20.0, gt=0)
    sample_size: int = Field(default=10, ge=1)

    queue_size: int = Field(default=1000, ge=1)
    max_attempts: int = Field(default=12, ge=1)
    #: How long a receiver may stay down before its notifications are dead-lettered
    retry_window_s: float = Field(default=900.0, gt=0)
    http_timeout_s: float = Field(default=10.0, gt=0)
    #: On SIGTERM: how long to keep sending what is queued before dead-lettering the rest
    drain_timeout_s: float = Field(default=10.0, ge=0)
    #: Call records kept to give alerts their call context (from/to, state, MOS)
    call_cache_size: int = Field(default=10_000, ge=0)
