"""Alerts the detector raises, with the SIP messages that triggered them as evidence."""

from typing import Literal

from pydantic import Field

from callqual.schemas.base import SCHEMA_VERSION, WireModel
from callqual.schemas.packet_content import PacketText

Severity = Literal["info", "warning", "critical"]


class EvidenceMessage(WireModel):
    """A pointer to the packet that supports an alert, so a user can open it in Wireshark."""

    frame: int
    ts: float
    src: str
    dst: str
    first_line: PacketText
    headers: dict[PacketText, PacketText] = Field(default_factory=dict)


class Alert(WireModel):
    kind: Literal["alert"] = "alert"
    schema_version: int = SCHEMA_VERSION
    #: Deterministic: the same input always yields the same id, so replays do not double-alert.
    alert_id: str
    rule: str
    severity: Severity
    call_id: PacketText | None
    source_ip: str | None
    first_ts: float
    last_ts: float
    summary: PacketText
    details: dict[str, float | int | PacketText | None] = Field(default_factory=dict)
    evidence: list[EvidenceMessage] = Field(default_factory=list)
    #: True while the call it is about is still up (a mid-call quality alert). The call's final
    #: record re-sends the alert with the same ``alert_id``, ``in_progress`` false and refined
    #: details: consumers keep the latest version per id (the alerter notifies the first only).
    in_progress: bool = False
