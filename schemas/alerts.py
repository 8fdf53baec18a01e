"""Alerts the detector raises, with the SIP messages that triggered them as evidence."""

from typing import Literal

from pydantic import Field

from callqual.schemas.base import SCHEMA_VERSION, WireModel

Severity = Literal["info", "warning", "critical"]


class EvidenceMessage(WireModel):
    """A pointer to the packet that supports an alert, so a user can open it in Wireshark."""

    frame: int
    ts: float
    src: str
    dst: str
    first_line: str
    headers: dict[str, str] = Field(default_factory=dict)


class Alert(WireModel):
    kind: Literal["alert"] = "alert"
    schema_version: int = SCHEMA_VERSION
    #: Deterministic: the same input always yields the same id, so replays do not double-alert.
    alert_id: str
    rule: str
    severity: Severity
    call_id: str | None
    source_ip: str | None
    first_ts: float
    last_ts: float
    summary: str
    details: dict[str, float | int | str | None] = Field(default_factory=dict)
    evidence: list[EvidenceMessage] = Field(default_factory=list)
