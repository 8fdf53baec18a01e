"""Pydantic v2 models of every message that crosses a transport (Kafka or in-process).

The models are the contract between the collector, the detector and the
alerter, and the JSON output of ``callqual analyze``. They carry a
``schema_version`` and a ``kind`` discriminator so a consumer can reject what
it does not understand instead of guessing.
"""

from callqual.schemas.alerts import Alert, EvidenceMessage, Severity
from callqual.schemas.base import SCHEMA_VERSION
from callqual.schemas.events import (
    AnyEvent,
    Event,
    MalformedSipEvent,
    RtcpEvent,
    RtcpReportBlock,
    RtpStreamReport,
    RtpStreamStats,
    SdpMedia,
    SipMessageEvent,
    parse_event,
)
from callqual.schemas.records import CallCategory, CallRecord, CallStateUpdate, LiveCallState, StreamRecord
from callqual.schemas.report import AnalysisReport, Summary

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "AnalysisReport",
    "AnyEvent",
    "CallCategory",
    "CallRecord",
    "CallStateUpdate",
    "Event",
    "EvidenceMessage",
    "LiveCallState",
    "MalformedSipEvent",
    "RtcpEvent",
    "RtcpReportBlock",
    "RtpStreamReport",
    "RtpStreamStats",
    "SdpMedia",
    "Severity",
    "SipMessageEvent",
    "StreamRecord",
    "Summary",
    "parse_event",
]
