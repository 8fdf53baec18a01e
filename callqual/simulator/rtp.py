"""RTP (RFC 3550), RFC 4733 telephone-event and RTCP SR/RR/SDES packet bytes, plus the codec table.

Only packet *bytes* live here; when packets are sent and which ones are lost
is decided by ``media`` and ``impairments``.
"""

import random
import struct
from dataclasses import dataclass

RTP_VERSION_BYTE = 0x80
TELEPHONE_EVENT_PT = 101
#: Seconds between 1900-01-01 (NTP era 0) and 1970-01-01.
NTP_UNIX_OFFSET = 2_208_988_800

_RTP_HEADER = struct.Struct(">BBHII")
_TELEPHONE_EVENT = struct.Struct(">BBH")
_SR = struct.Struct(">BBHIIIIII")
_RR = struct.Struct(">BBHI")
_REPORT_BLOCK = struct.Struct(">IIIIII")


@dataclass(frozen=True, slots=True)
class Codec:
    """A payload format as it appears in SDP and on the wire."""

    name: str  #: the label name, e.g. 'PCMU'
    payload_type: int
    encoding: str  #: a=rtpmap encoding name
    clock_rate: int
    channels: int | None
    payload_bytes: int  #: bytes per 20 ms packet
    fmtp: str | None = None

    @property
    def ptime_ms(self) -> int:
        return 20

    @property
    def samples_per_packet(self) -> int:
        return self.clock_rate * self.ptime_ms // 1000

    @property
    def rtpmap(self) -> str:
        suffix = f"/{self.channels}" if self.channels else ""
        return f"{self.encoding}/{self.clock_rate}{suffix}"


CODECS: dict[str, Codec] = {
    "PCMU": Codec("PCMU", 0, "PCMU", 8000, None, 160),
    "PCMA": Codec("PCMA", 8, "PCMA", 8000, None, 160),
    "G729": Codec("G729", 18, "G729", 8000, None, 20, "annexb=no"),
    "opus": Codec("opus", 111, "opus", 48000, 2, 80, "minptime=10;useinbandfec=1"),
    # Offered by the "large INVITE" caller only; never negotiated by the simulator.
    "G722": Codec("G722", 9, "G722", 8000, None, 160),
    "GSM": Codec("GSM", 3, "GSM", 8000, None, 33),
    "iLBC": Codec("iLBC", 97, "iLBC", 8000, None, 38, "mode=20"),
    "speex": Codec("speex", 98, "speex", 16000, None, 42),
}
TELEPHONE_EVENT = Codec("telephone-event", TELEPHONE_EVENT_PT, "telephone-event", 8000, None, 4, "0-16")

#: RFC 4733 event codes of the DTMF digits.
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}

#: Opus TOC byte: config 15 (hybrid, fullband, 20 ms), mono, code 0 (one frame) -- any frame bytes follow.
_OPUS_TOC = bytes([15 << 3])


def payload_pool(codec: Codec, rng: random.Random, count: int = 16) -> list[bytes]:
    """A few distinct payloads to cycle through: realistic sizes, cheap to produce, valid for dissectors.

    G.711 is near-silence comfort noise around the codec's zero level; Opus
    packets start with a valid TOC byte so Wireshark's Opus dissector accepts them.
    """
    pool: list[bytes] = []
    for _ in range(count):
        if codec.encoding == "PCMU":
            pool.append(bytes(rng.choices((0xFF, 0xFE, 0x7F, 0x7E, 0xFD), k=codec.payload_bytes)))
        elif codec.encoding == "PCMA":
            pool.append(bytes(rng.choices((0xD5, 0xD4, 0x55, 0x54, 0xD7), k=codec.payload_bytes)))
        elif codec.encoding == "opus":
            size = rng.randint(60, 110)
            pool.append(_OPUS_TOC + rng.randbytes(size - 1))
        else:
            pool.append(rng.randbytes(codec.payload_bytes))
    return pool


def rtp_header(payload_type: int, seq: int, timestamp: int, ssrc: int, *, marker: bool = False) -> bytes:
    return _RTP_HEADER.pack(
        RTP_VERSION_BYTE, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
    )


def telephone_event(event: int, *, end: bool, volume: int, duration: int) -> bytes:
    """RFC 4733 section 2.3 payload: event, E bit + volume, duration in timestamp units."""
    return _TELEPHONE_EVENT.pack(event, (0x80 if end else 0) | (volume & 0x3F), duration & 0xFFFF)


def ntp_timestamp(ts_us: int) -> tuple[int, int]:
    """64-bit NTP time as (seconds, fraction) from Unix microseconds."""
    seconds = ts_us // 1_000_000 + NTP_UNIX_OFFSET
    fraction = (ts_us % 1_000_000) * (1 << 32) // 1_000_000
    return seconds & 0xFFFFFFFF, fraction


def ntp_middle32(ts_us: int) -> int:
    """The LSR form of a timestamp: middle 32 bits of the 64-bit NTP time."""
    seconds, fraction = ntp_timestamp(ts_us)
    return ((seconds & 0xFFFF) << 16) | (fraction >> 16)


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One RFC 3550 reception report block, in wire units."""

    ssrc: int
    fraction_lost: int  #: 0..255, fraction of 256
    cumulative_lost: int
    highest_seq: int  #: extended highest sequence number received
    jitter: int  #: interarrival jitter in timestamp units
    lsr: int
    dlsr: int  #: units of 1/65536 s

    def pack(self) -> bytes:
        lost = self.cumulative_lost & 0xFFFFFF
        return _REPORT_BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | lost,
            self.highest_seq & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr,
            self.dlsr,
        )


def _sdes_cname(ssrc: int, cname: str) -> bytes:
    item = bytes([1, len(cname)]) + cname.encode()
    chunk = struct.pack(">I", ssrc) + item + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return struct.pack(">BBH", 0x81, 202, len(chunk) // 4) + chunk


def rtcp_compound(
    ssrc: int,
    cname: str,
    blocks: list[ReportBlock],
    *,
    sender: tuple[int, int, int, int] | None,
) -> bytes:
    """A compound RTCP packet: SR (when ``sender`` = (ts_us, rtp_ts, packets, octets)) or RR, then SDES CNAME.

    RFC 3550 6.1 requires every compound packet to start with SR/RR and to carry a CNAME.
    """
    body = b"".join(block.pack() for block in blocks)
    count = len(blocks)
    if sender is not None:
        ts_us, rtp_ts, packets, octets = sender
        ntp_sec, ntp_frac = ntp_timestamp(ts_us)
        length = 6 + 6 * count
        head = _SR.pack(
            0x80 | count, 200, length, ssrc, ntp_sec, ntp_frac, rtp_ts & 0xFFFFFFFF, packets, octets
        )
    else:
        head = _RR.pack(0x80 | count, 201, 1 + 6 * count, ssrc)
    return head + body + _sdes_cname(ssrc, cname)
