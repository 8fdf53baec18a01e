"""Crafting whole calls byte by byte: SIP with SDP, RTP, SRTP and ZRTP, into a pcap.

The tests that need a call shape no shared capture has (a re-INVITE moving
media, a T.38 switch-over, ZRTP keying SRTP) state it here packet by packet,
then compare what we make of it with tshark and between our two paths.
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tests.collector.pcapcraft import ether, ipv4, udp, write_pcap

Endpoint = tuple[str, int]

#: the a=rtpmap line ``sdp`` writes for a format
RTPMAPS = {"0": "PCMU/8000", "8": "PCMA/8000", "96": "opus/48000"}


def sdp(ip: str, media: list[tuple[str, int, str, str]], session: int = 1) -> bytes:
    """An SDP body; ``media`` lists (media, port, proto, formats) such as ("audio", 4000, "RTP/AVP", "0")."""
    lines = ["v=0", f"o=- {session} {session} IN IP4 {ip}", "s=-", f"c=IN IP4 {ip}", "t=0 0"]
    for kind, port, proto, formats in media:
        lines.append(f"m={kind} {port} {proto} {formats}")
        lines.extend(f"a=rtpmap:{f} {RTPMAPS[f]}" for f in formats.split() if f in RTPMAPS)
    return ("\r\n".join(lines) + "\r\n").encode()


def sip(first_line: str, call_id: str, cseq: str, *, to_tag: str | None = None, body: bytes = b"") -> bytes:
    """A SIP message between alice@10.0.0.1 and bob@10.0.0.2 (the tests' two parties)."""
    to = "<sip:bob@10.0.0.2>" + (f";tag={to_tag}" if to_tag else "")
    branch = zlib.crc32(f"{call_id}{cseq}{first_line}".encode())
    head = [
        first_line,
        f"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{branch:x}",
        "From: <sip:alice@10.0.0.1>;tag=a1",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq}",
        *(["Content-Type: application/sdp"] if body else []),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def rtp(seq: int, ts: int, ssrc: int, payload: bytes, *, pt: int = 0, marker: bool = False) -> bytes:
    b1 = pt | (0x80 if marker else 0)
    return struct.pack("!BBHII", 0x80, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def srtp(seq: int, ts: int, ssrc: int, rng: random.Random, *, pt: int = 0, padded: bool = False) -> bytes:
    """RFC 3711: the RTP header in clear, an encrypted payload (random here) and a 10-byte auth tag.

    ``padded`` sets the P bit: the padding count is then inside the encryption, and what sits in the
    last octet, where a reader of the clear header looks for it, is a byte of the auth tag.
    """
    packet = rtp(seq, ts, ssrc, rng.randbytes(160) + rng.randbytes(10), pt=pt)
    return bytes([packet[0] | 0x20]) + packet[1:] if padded else packet


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


#: RFC 6189 5.1.2: message type blocks, with a plausible body length (bytes) for each
ZRTP_MESSAGES: dict[bytes, int] = {
    b"Hello   ": 88,
    b"HelloACK": 0,
    b"Commit  ": 100,
    b"DHPart1 ": 440,
    b"DHPart2 ": 440,
    b"Confirm1": 64,
    b"Confirm2": 64,
    b"Conf2ACK": 0,
}


def zrtp(seq: int, ssrc: int, message: bytes, rng: random.Random) -> bytes:
    """RFC 6189 5: 0x10, 0, sequence, magic 'ZRTP', source id, then the message and its CRC-32C."""
    body = rng.randbytes(ZRTP_MESSAGES[message])
    if message == b"Hello   ":
        body = b"1.10" + body[4:]  # the version Wireshark's dissector checks
    words = (4 + len(message) + len(body)) // 4
    header = struct.pack("!BBH4sI", 0x10, 0, seq, b"ZRTP", ssrc)
    packet = header + b"PZ" + struct.pack("!H", words) + message + body
    return packet + struct.pack("!I", _crc32c(packet))


@dataclass
class CallCapture:
    """Packets in capture order; ``write`` makes the pcap (Ethernet, IPv4, UDP)."""

    packets: list[tuple[float, bytes]] = field(default_factory=list)

    def add(self, ts: float, src: Endpoint, dst: Endpoint, payload: bytes) -> None:
        self.packets.append((ts, ether(ipv4(src[0], dst[0], 17, udp(src[1], dst[1], payload)))))

    def write(self, path: Path) -> Path:
        return write_pcap(path, sorted(self.packets, key=lambda p: p[0]))
