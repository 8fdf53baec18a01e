"""SIP events carry the message's exact bytes (the call store keeps and exports them)."""

from callqual.collector.capture.pcap_file import open_capture
from callqual.pipeline.embedded import EmbeddedPipeline
from callqual.schemas import AnyEvent, SipMessageEvent, parse_event
from tests.shared_captures import PCAPS


def _sip_events(name: str) -> list[SipMessageEvent]:
    events: list[AnyEvent] = []
    pipeline = EmbeddedPipeline(on_event=events.append)
    with open_capture(PCAPS / name) as capture:
        pipeline.run(capture)
        pipeline.finish()
    return [e for e in events if isinstance(e, SipMessageEvent)]


def test_raw_bytes_are_the_reassembled_message_and_survive_json() -> None:
    sip = _sip_events("heplify/sip_ipv4_tcp.pcap")
    assert len(sip) == 7
    for event in sip:
        assert event.raw.startswith(event.first_line.encode())
        assert len(event.raw) == event.size
        assert parse_event(event.model_dump_json()) == event


def test_non_utf8_bytes_round_trip_as_base64() -> None:
    event = _sip_events("heplify/sip_ipv4_tcp.pcap")[0].model_copy(update={"raw": b"INVITE \xff\xfe\r\n"})
    assert parse_event(event.model_dump_json()).raw == b"INVITE \xff\xfe\r\n"  # type: ignore[union-attr]
