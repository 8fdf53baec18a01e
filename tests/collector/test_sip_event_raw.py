"""SIP events carry the exact bytes of their message, as standard base64 on the wire.

A call store keeps and exports what was on the wire (pcap export, ladder views),
so the bytes must survive the collector and the Kafka JSON unchanged, whatever
they are: split over TCP segments, or not UTF-8 at all.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.schemas import AnyEvent, MalformedSipEvent, SipMessageEvent, parse_event
from callqual.schemas.export import schemas
from tests.collector.pcapcraft import ether, ipv4, tcp, udp, write_pcap

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
    b'From: "M\xfcller" <sip:alice@example.com>;tag=1\r\n'
    b"To: <sip:bob@example.com>\r\nCall-ID: raw-1@h\r\nCSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)
GARBAGE = b"INVITE \xff\xfe\x00 SIP/2.0\r\nnot sip at all\r\n\r\n"


def _events(path: Path) -> list[AnyEvent]:
    out: list[AnyEvent] = []
    collector = Collector(out.append)
    with open_capture(path) as capture:
        collector.run(capture)
    collector.finish()
    return out


def test_raw_is_the_message_over_udp_and_tcp_and_round_trips(tmp_path: Path) -> None:
    half = len(INVITE) // 2
    frames = [
        ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(5060, 5060, INVITE))),
        ether(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 5060, 1000, 0x18, INVITE[:half]))),
        ether(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 5060, 1000 + half, 0x18, INVITE[half:]))),
        ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(5060, 5060, GARBAGE))),
    ]
    path = write_pcap(tmp_path / "raw.pcap", [(1000.0 + i, f) for i, f in enumerate(frames)])
    events = _events(path)
    sip = [e for e in events if isinstance(e, SipMessageEvent)]
    assert [(e.transport, e.raw) for e in sip] == [("udp", INVITE), ("tcp", INVITE)]
    malformed = [e for e in events if isinstance(e, MalformedSipEvent) and e.raw == GARBAGE]
    assert len(malformed) == 1
    for event in [*sip, *malformed]:
        wire = event.model_dump_json()
        assert json.loads(wire)["raw"] == base64.b64encode(event.raw).decode()  # standard alphabet
        assert parse_event(wire.encode()) == event


def test_the_schema_says_base64_and_bounds_it() -> None:
    event_schema = schemas()["collector-event.schema.json"]
    sip = event_schema["$defs"]["SipMessageEvent"]  # type: ignore[index]
    assert sip["properties"]["raw"]["contentEncoding"] == "base64"
    assert sip["properties"]["raw"]["maxLength"] >= 4 * 65535 // 3
