"""SIP payloads as the wire events the collector publishes: one per message, one per malformed payload.

Split from the collector's input paths (issue 14): this is where parsed SIP
becomes a ``SipMessageEvent``, built without validation because the parser's
single decode already guarantees what the schema checks.
"""

from typing import Final

from callqual.collector.packet import Payload
from callqual.collector.sip.message import SipMessage
from callqual.schemas import MalformedSipEvent, SdpMedia, SipMessageEvent
from callqual.schemas.base import SCHEMA_VERSION
from callqual.schemas.events import Transport
from callqual.schemas.packet_content import MAX_SIP_MESSAGE_BYTES, packet_text
from callqual.schemas.prebuilt import every_field, prebuilt

__all__ = ["SDP_MEDIA_FIELDS", "malformed_sip_event", "sip_message_event"]

#: Every field of each model, given: one set shared by all the models built here, as pydantic
#: shares nothing but reads it only (``model_copy`` copies it; the models are frozen).
_SIP_MESSAGE_FIELDS: Final = every_field(SipMessageEvent)
SDP_MEDIA_FIELDS: Final = every_field(SdpMedia)

_TRANSPORTS: dict[str, Transport] = {
    "udp": "udp",
    "tcp": "tcp",
    "sctp": "sctp",
    "ws": "ws",
    "wss": "wss",
    "tls": "tls",
}


def _transport(name: str) -> Transport:
    return _TRANSPORTS.get(name, "udp")


def _excerpt(data: bytes) -> str:
    line = data.split(b"\n", 1)[0][:200]
    return packet_text(line).rstrip("\r")


def sip_message_event(
    p: Payload, msg: SipMessage, sdp: list[SdpMedia] | None, keep_raw: bool = True
) -> SipMessageEvent:
    """The event, built without validation: every field is already what the schema demands.

    Text comes from ``parse_sip``'s one decode (strict UTF-8, or ``packet_text``'s escapes), so
    it cannot hold a surrogate; ``raw`` is cut to its bound here, or empty without ``keep_raw``
    (``CollectorConfig.keep_sip_raw``); the rest are parser ints and the decoder's addresses.
    Validating again cost a sixth of the per-message time (issue 14);
    ``tests/collector/test_sip_event_construct.py`` holds it equal to the validated model.
    """
    fields = {
        "kind": "sip_message",
        "schema_version": SCHEMA_VERSION,
        "frame": p.frame,
        "ts": p.ts,
        "src_ip": p.src_ip,
        "src_port": p.src_port,
        "dst_ip": p.dst_ip,
        "dst_port": p.dst_port,
        "transport": _transport(p.transport),
        "first_line": msg.first_line,
        "is_request": msg.is_request,
        "method": msg.method,
        "request_uri": msg.request_uri,
        "status_code": msg.status_code,
        "reason_phrase": msg.reason_phrase,
        "call_id": msg.call_id or "",
        "cseq_num": msg.cseq_num,
        "cseq_method": msg.cseq_method,
        "from_uri": msg.from_uri,
        "from_tag": msg.from_tag,
        "to_uri": msg.to_uri,
        "to_tag": msg.to_tag,
        "via_branch": msg.via_branch,
        "user_agent": msg.user_agent,
        "contact": msg.contact_uri,
        "reason_header": msg.reason_header,
        "content_type": msg.content_type,
        "size": len(p.data),
        "sdp": sdp,
        "raw": p.data[:MAX_SIP_MESSAGE_BYTES] if keep_raw else b"",
    }
    return prebuilt(SipMessageEvent, fields, _SIP_MESSAGE_FIELDS)


def malformed_sip_event(p: Payload, reason: str, usable: SipMessage | None = None) -> MalformedSipEvent:
    """A payload that did not parse (or parsed bent: ``usable``) as evidence; rare, so validated."""
    return MalformedSipEvent(
        frame=p.frame,
        ts=p.ts,
        src_ip=p.src_ip,
        src_port=p.src_port,
        dst_ip=p.dst_ip,
        dst_port=p.dst_port,
        transport=_transport(p.transport),
        reason=reason,
        excerpt=_excerpt(p.data),
        size=len(p.data),
        raw=p.data[:MAX_SIP_MESSAGE_BYTES],
        call_id=usable.call_id if usable is not None else None,
        cseq_num=usable.cseq_num if usable is not None else None,
        cseq_method=usable.cseq_method if usable is not None else None,
    )
