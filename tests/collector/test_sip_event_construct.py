"""SIP events are built without validation (issue 14): they must equal the validated model.

The collector builds ``SipMessageEvent`` and ``SdpMedia`` with ``WireModel.trusted`` because
its text is decoded once, at the parser, into text that cannot hold a surrogate. These tests
hold that promise on real captures and on bytes that are not UTF-8: validating each event's
own fields again gives the same event, and the JSON a Kafka consumer reads parses back to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.collector.config import CollectorConfig
from callqual.schemas import AnyEvent, SdpMedia, SipMessageEvent, parse_event
from tests.collector.pcapcraft import ether, ipv4, udp, write_pcap
from tests.shared_captures import PCAPS

CAPTURES = [
    "heplify/rtp_rtcp_sip_ipv4_udp.pcap",
    "heplify/sip_ipv4_tcp.pcap",
    "heplify/sip_ipv6_udp.pcap",
    "heplify/sip_tcp_websocket.pcap",
    "heplify/sip_sctp.pcap",
    "sngrep/ipv6frag.pcap",
]

SDP = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=\xe9\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n"
LATIN1_INVITE = (
    b"INVITE sip:b\xf6b@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
    b'From: "M\xfcller" <sip:alice@example.com>;tag=1\r\n'
    b"To: <sip:bob@example.com>\r\nCall-ID: ab\xffc@h\r\nCSeq: 1 INVITE\r\n"
    b"User-Agent: caf\xc3\xa9 \xed\xa0\x80phone\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s" % (len(SDP), SDP)
)


def _sip_events(path: Path, config: CollectorConfig | None = None) -> list[SipMessageEvent]:
    out: list[AnyEvent] = []
    collector = Collector(out.append, config)
    with open_capture(path) as capture:
        collector.run(capture)
    collector.finish()
    return [e for e in out if isinstance(e, SipMessageEvent)]


def _assert_validated_equal(events: list[SipMessageEvent]) -> None:
    assert events
    for event in events:
        assert event.model_fields_set == set(SipMessageEvent.model_fields)  # every field given
        for media in event.sdp or []:
            assert media.model_fields_set == set(SdpMedia.model_fields)
        assert SipMessageEvent.model_validate(event.model_dump()) == event
        assert parse_event(event.model_dump_json().encode()) == event


@pytest.mark.parametrize("name", CAPTURES)
def test_constructed_events_equal_validated_ones_on_shared_captures(name: str) -> None:
    _assert_validated_equal(_sip_events(PCAPS / name))


def test_bytes_that_are_not_utf8_reach_the_event_escaped_never_as_surrogates(tmp_path: Path) -> None:
    frame = ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(5060, 5060, LATIN1_INVITE)))
    events = _sip_events(write_pcap(tmp_path / "latin1.pcap", [(1000.0, frame)]))
    _assert_validated_equal(events)
    (event,) = events
    assert event.call_id == "ab\\xffc@h"
    assert event.request_uri == "sip:b\\xf6b@example.com"
    assert event.user_agent == "caf\u00e9 \\xed\\xa0\\x80phone"  # an encoded surrogate stays bytes
    assert event.sdp is not None and event.sdp[0].port == 4000


@pytest.mark.parametrize("name", CAPTURES)
def test_without_keep_sip_raw_only_the_raw_bytes_are_left_out(name: str) -> None:
    """``analyze`` without a store: events as before, but for ``raw`` (which no report reads)."""
    kept = _sip_events(PCAPS / name)
    left = _sip_events(PCAPS / name, CollectorConfig(keep_sip_raw=False))
    assert len(left) == len(kept) > 0
    for short, whole in zip(left, kept, strict=True):
        assert whole.raw and short.raw == b""
        assert short == whole.model_copy(update={"raw": b""})
    _assert_validated_equal(left)
