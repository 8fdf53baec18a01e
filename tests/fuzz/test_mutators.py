"""The mutators break what they say they break, and SIP mutations still reach the SIP parser."""

from __future__ import annotations

from callqual.collector.packet import Frame
from callqual.fuzz.driver import drive, load_capture
from callqual.fuzz.layers import locate
from callqual.fuzz.mutators import MUTATORS, SIP_MUTATORS, mutate
from tests.shared_captures import PCAPS

CAPTURE = load_capture(PCAPS / "rtp-pcap/sip-rtp-g722.pcap")
INVITE = CAPTURE.frames[CAPTURE.sip_frames[0]]


def _rtp_frame() -> Frame:
    return next(f for f in CAPTURE.frames if f.data[42:43] == b"\x80" and len(f.data) > 100)


def test_every_mutator_changes_the_frame() -> None:
    for name in MUTATORS:
        for seed in range(20):
            out = mutate(INVITE, name, seed)
            assert (out.data, out.ts) != (INVITE.data, INVITE.ts), (name, seed)
            assert out.number == INVITE.number and out.orig_len >= len(out.data)


def test_header_fields_are_set_to_zero_or_all_ones() -> None:
    frame = _rtp_frame()
    ip_total, udp_length = set(), set()
    for seed in range(300):
        out = mutate(frame, "header_field", seed)
        changed = [i for i, (a, b) in enumerate(zip(frame.data, out.data, strict=True)) if a != b]
        assert len(out.data) == len(frame.data) and changed
        assert changed[-1] - changed[0] < 4  # one field
        if 16 <= changed[0] < 18:
            ip_total.add(out.data[16:18])
        if 38 <= changed[0] < 40:
            udp_length.add(out.data[38:40])
    assert ip_total == udp_length == {b"\0\0", b"\xff\xff"}


def test_sip_mutations_keep_ip_and_udp_lengths_consistent() -> None:
    layers = locate(INVITE.linktype, INVITE.data)
    assert layers is not None and layers.l4 is not None
    for name in sorted(SIP_MUTATORS):
        for seed in range(10):
            out = mutate(INVITE, name, seed)
            total = int.from_bytes(out.data[layers.ip + 2 : layers.ip + 4], "big")
            udp = int.from_bytes(out.data[layers.l4 + 4 : layers.l4 + 6], "big")
            assert total == len(out.data) - layers.ip and udp == len(out.data) - layers.l4, (name, seed)


def test_non_utf8_sip_reaches_the_events_and_round_trips() -> None:
    """The whole-path driver re-reads each event from its Kafka bytes; none may differ or fail."""
    for seed in range(20):
        out = mutate(INVITE, "sip_non_utf8", seed)
        result = drive([out])
        assert result.events == 1 or result.errors, seed
