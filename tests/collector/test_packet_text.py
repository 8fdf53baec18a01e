"""SIP text that is not UTF-8 reaches every output as escaped text, never as a surrogate.

Real captures carry Latin-1 display names and corrupted bytes. The one
representation (``callqual.schemas.packet_content``): UTF-8 as is, each stray
byte as ``\\xNN``. These captures are crafted byte by byte and go through
``callqual analyze --format json`` and through the collector service publishing
to a real broker, the two places that crashed on them.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from callqual.collector.capture.pcap_file import open_capture
from callqual.collector.collector import Collector
from callqual.schemas import AnyEvent, SipMessageEvent, parse_event
from callqual.schemas.packet_content import packet_text, without_surrogates
from callqual.transport.topics import Topics
from tests.collector.pcapcraft import ether, ipv4, udp, write_pcap

_RANDOM_HIGH = bytes(random.Random(10).randrange(0x80, 0x100) for _ in range(24))


def _invite(call_id: bytes, display: bytes, extra: bytes = b"", sdp_name: bytes = b"-") -> bytes:
    sdp = (
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=" + sdp_name + b"\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:8 PCMA\xe9/8000\r\n"
    )
    head = [
        b"INVITE sip:bob@example.com SIP/2.0",
        b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK" + call_id[:4],
        b"From: " + display + b" <sip:alice@example.com>;tag=1",
        b"To: <sip:bob@example.com>",
        b"Call-ID: " + call_id,
        b"CSeq: 1 INVITE",
        *([extra] if extra else []),
        b"Content-Type: application/sdp",
        b"Content-Length: %d" % len(sdp),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + sdp


#: (what is odd, message): each message is one call
MESSAGES = [
    ("latin-1 display name", _invite(b"latin1@h", b'"M\xfcller"', sdp_name=b"caf\xe9")),
    (
        "random high bytes",
        _invite(b"random@h", b'"' + _RANDOM_HIGH + b'"', b"User-Agent: " + _RANDOM_HIGH),
    ),
    ("corrupted Call-ID", _invite(b"corr\xffupted@h", b"Bob")),
    ("corrupted header name", _invite(b"name@h", b"Bob", b"X-Tr\xe4ce: 1")),
    ("surrogate-looking UTF-8", _invite("utf8-\u00fc-\u20ac@h".encode(), '"Ren\u00e9e"'.encode())),
]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = [
        (1000.0 + i, ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(5060, 5060, message))))
        for i, (_, message) in enumerate(MESSAGES)
    ]
    return write_pcap(tmp_path_factory.mktemp("text") / "text.pcap", frames)


def _sip_events(path: Path) -> list[SipMessageEvent]:
    out: list[AnyEvent] = []
    collector = Collector(out.append)
    with open_capture(path) as cap:
        collector.run(cap)
    collector.finish()
    return [e for e in out if isinstance(e, SipMessageEvent)]


def test_the_representation() -> None:
    assert packet_text(b"M\xfcller \xe2\x82\xac") == "M\\xfcller \u20ac"
    assert packet_text(bytes(range(256))).encode("utf-8")  # every byte value: encodable text
    # a surrogate from anywhere (surrogateescape, a JSON '\udcff' escape) becomes the same escape
    assert without_surrogates("ab\udcffc\ud800") == "ab\\xffc\\ud800"


def test_events_hold_escaped_text_and_the_raw_bytes(capture: Path) -> None:
    events = _sip_events(capture)
    assert [e.raw for e in events] == [m for _, m in MESSAGES]
    by_call = {e.call_id: e for e in events}
    assert set(by_call) == {"latin1@h", "random@h", "corr\\xffupted@h", "name@h", "utf8-\u00fc-\u20ac@h"}
    assert by_call["random@h"].user_agent == packet_text(_RANDOM_HIGH)
    assert by_call["latin1@h"].sdp is not None
    assert by_call["latin1@h"].sdp[0].rtpmap == {8: "PCMA\\xe9/8000"}
    for event in events:
        event.model_dump_json().encode("utf-8")  # would raise on a surrogate


def test_no_surrogate_can_enter_a_model(capture: Path) -> None:
    event = _sip_events(capture)[0]
    # built in Python from surrogate-escaped text (as the SDP parser once did): escaped on the way in
    fields = event.model_dump() | {"call_id": "latin1\udcff@h", "user_agent": "x\udcfe"}
    rebuilt = SipMessageEvent.model_validate(fields)
    assert (rebuilt.call_id, rebuilt.user_agent) == ("latin1\\xff@h", "x\\xfe")
    # from JSON (what the detector reads off Kafka): a lone surrogate escape is refused, a counted error
    wire = event.model_dump_json().replace("latin1@h", "latin1\\udcff@h")
    with pytest.raises(ValidationError):
        parse_event(wire.encode())


def test_analyze_json(capture: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "callqual", "analyze", str(capture), "--format", "json"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    report = json.loads(proc.stdout)
    calls = {c["call_id"]: c for c in report["calls"]}
    assert calls["corr\\xffupted@h"]["from_uri"] == "sip:alice@example.com"
    assert calls["random@h"]["user_agent"] == packet_text(_RANDOM_HIGH)
    assert calls["utf8-\u00fc-\u20ac@h"]["state"] == "in_progress"
    assert report["summary"]["errors"]["sip.not_utf8"] == 4  # counted as anomalies, calls still tracked
    assert report["summary"]["sip_messages"] == len(MESSAGES)


@pytest.mark.kafka
@pytest.mark.slow
def test_collector_service_publishes_them_to_kafka(capture: Path, kafka_bootstrap: str) -> None:
    from tests.pipeline.test_kafka_pipeline import collector, finish, read_topic

    prefix = f"t{uuid.uuid4().hex[:10]}."
    code, log = finish(collector(kafka_bootstrap, prefix, capture))
    assert code == 0, log
    values = [v for v, _ in read_topic(kafka_bootstrap, Topics.with_prefix(prefix).events)]
    sip = sorted(
        (parse_event(v) for v in values if json.loads(v)["kind"] == "sip_message"), key=lambda e: e.frame
    )
    assert sip == _sip_events(capture)
