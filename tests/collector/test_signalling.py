"""The collector's signalling side on its own: which messages end a call, and the bound on what it keeps."""

from __future__ import annotations

from collections import Counter

from callqual.collector.config import CollectorConfig
from callqual.collector.media.media_registry import MediaRegistry
from callqual.collector.packet import Payload
from callqual.collector.signalling import Signalling
from callqual.schemas import AnyEvent
from tests.collector.callcraft import sdp, sip


def _signalling(max_tracked_calls: int = 200_000) -> tuple[Signalling, list[AnyEvent]]:
    events: list[AnyEvent] = []
    config = CollectorConfig(max_tracked_calls=max_tracked_calls)
    counts: dict[str, Counter[str]] = {"errors": Counter(), "counters": Counter(), "dropped": Counter()}
    return Signalling(events.append, MediaRegistry(), config, **counts), events


def _payload(data: bytes, ts: float, frame: int = 1) -> Payload:
    return Payload(frame, ts, "10.0.0.1", 5060, "10.0.0.2", 5060, "udp", data)


def test_a_bye_or_a_failed_invite_ends_its_call_once() -> None:
    s, events = _signalling()
    s.on_sip(_payload(sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "ok", "1 INVITE"), 10.0))
    s.on_sip(_payload(sip("SIP/2.0 200 OK", "ok", "1 INVITE", to_tag="b"), 11.0))
    s.on_sip(_payload(sip("SIP/2.0 486 Busy Here", "busy", "1 INVITE", to_tag="b"), 12.0))
    s.on_sip(_payload(sip("BYE sip:bob@10.0.0.2 SIP/2.0", "ok", "2 BYE", to_tag="b"), 20.0))
    s.on_sip(_payload(sip("BYE sip:bob@10.0.0.2 SIP/2.0", "ok", "2 BYE", to_tag="b"), 21.0))  # retransmitted
    assert dict(s.ended) == {"busy": 12.0, "ok": 20.0}
    assert len(events) == 5 and s.counters["sip.messages"] == 5


def test_the_call_end_table_forgets_its_oldest_and_counts_it() -> None:
    s, _ = _signalling(max_tracked_calls=2)
    for n, call in enumerate(("c1", "c2", "c3")):
        s.on_sip(_payload(sip("BYE sip:bob@10.0.0.2 SIP/2.0", call, "2 BYE", to_tag="b"), float(n)))
    assert list(s.ended) == ["c2", "c3"]
    assert s.dropped["calls.end_table_evicted"] == 1


def test_sdp_teaches_the_media_registry_its_call() -> None:
    s, _ = _signalling()
    body = sdp("10.0.0.1", [("audio", 4000, "RTP/AVP", "0")])
    s.on_sip(_payload(sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "media", "1 INVITE", body=body), 1.0))
    rtp = s.media.lookup("10.0.0.2", 6000, "10.0.0.1", 4000)
    rtcp = s.media.lookup("10.0.0.1", 4001, "10.0.0.2", 6001)
    assert rtp is not None and (rtp.call_id, rtp.is_rtcp, rtp.rtpmap) == ("media", False, {0: "PCMU/8000"})
    assert rtcp is not None and (rtcp.call_id, rtcp.is_rtcp) == ("media", True)


def test_a_snapped_message_is_counted_as_snapped_not_as_what_is_missing() -> None:
    s, events = _signalling()
    whole = sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "cut", "1 INVITE")
    s.on_sip(Payload(1, 1.0, "10.0.0.1", 5060, "10.0.0.2", 5060, "udp", whole[:20], cut=len(whole) - 20))
    assert s.errors == Counter({"sip.snapped": 1})
    assert [e.kind for e in events] == ["sip_malformed"]
