"""How a party sends its RTP, from its own stream and SDP: what a mid-call stop has to be told from.

Silence suppression (RFC 3551 4.1) sends nothing while the talker is quiet, and a pause looks
exactly like media that stopped until it ends. So how long a silent direction must stay silent
before it is called a stop depends on what its sender showed: packets at its own packetisation
time without a gap (the stream's payload size says the ptime, 20, 30 or 40 ms alike), and
whether it can suppress silence at all (comfort noise in its SDP or stream, RFC 3389; a codec
whose own discontinuous transmission leaves gaps, such as G.729 Annex B once it sent a SID
frame). Pure: reads records only.
"""

from collections.abc import Iterable
from typing import Final

from callqual.schemas import SdpMedia, StreamRecord

#: Payload bytes per millisecond of audio of the constant-bitrate codecs (RFC 3551 4.5): a
#: packet's payload size gives its packetisation time whatever ``a=ptime`` announced.
CBR_BYTES_PER_MS: Final[dict[str, float]] = {
    "PCMU": 8.0,
    "PCMA": 8.0,
    "G722": 8.0,
    "G726-16": 2.0,
    "G726-24": 3.0,
    "G726-32": 4.0,
    "G726-40": 5.0,
    "G728": 2.0,
    "GSM": 33 / 20,
    "G729": 1.0,
}

#: Codecs with their own discontinuous transmission that may leave long gaps (a SID frame, then
#: nothing until the background noise changes): G.729 Annex B (on unless ``annexb=no``, RFC
#: 4856), G.723.1 Annex A, Speex. Each with the voice-frame size that tells a SID frame apart,
#: where one does: a G.729 stream whose payload is all 10-byte frames never entered DTX (its
#: first silent frame is always a 2-byte SID), so its silence is a stop. Opus, AMR, AMR-WB and
#: EVS have DTX too, but it keeps a packet at least every 400 ms (RFC 7587 3.1.3; SID updates
#: every 8th frame): seconds without one are no pause of theirs.
GAPPING_DTX_FRAME_BYTES: Final[dict[str, int | None]] = {
    "G729": 10,
    "G729D": None,
    "G729E": None,
    "G723": None,
    "SPEEX": None,
}

#: RFC 3389 comfort noise: static payload types (13, and the old 19) and the rtpmap name
CN_PAYLOAD_TYPES: Final[frozenset[int]] = frozenset({13, 19})
_CN_NAME = "CN"

#: Without a payload size to go by (a variable-rate or unknown codec): the common 20 ms
DEFAULT_PTIME_S: Final[float] = 0.020

#: A sender with at least this share of the packets its ptime implies over its life did not pause.
CONTINUOUS_DENSITY: Final[float] = 0.9


def ptime_s(st: StreamRecord) -> float:
    """Seconds of audio per packet: payload size over the codec's constant bitrate, else 20 ms."""
    rate = CBR_BYTES_PER_MS.get((st.codec or "").upper())
    if rate is None or st.packets <= 0 or st.payload_bytes <= 0:
        return DEFAULT_PTIME_S
    return st.payload_bytes / st.packets / rate / 1000.0


def sent_without_pause(st: StreamRecord) -> bool:
    """Packets at its own ptime from its first to its last, no gap (as far as the counts show)."""
    span = st.last_ts - st.first_ts
    return span > 0 and st.packets >= CONTINUOUS_DENSITY * span / ptime_s(st)


def _names_cn(pt: int, rtpmap: dict[int, str]) -> bool:
    mapped = rtpmap.get(pt)
    if mapped is not None:
        return mapped.split("/", 1)[0].strip().upper() == _CN_NAME
    return pt in CN_PAYLOAD_TYPES


def _dtx_may_pause(st: StreamRecord) -> bool:
    """Its codec's DTX may leave a long gap, and (where the frame size tells) it sent a SID frame."""
    name = (st.codec or "").upper()
    if name not in GAPPING_DTX_FRAME_BYTES:
        return False
    frame = GAPPING_DTX_FRAME_BYTES[name]
    return frame is None or st.payload_bytes % frame != 0


def may_suppress_silence(streams: Iterable[StreamRecord], own_sdp: Iterable[SdpMedia]) -> bool:
    """The sender can go quiet on purpose: comfort noise offered or sent, or a DTX codec's pause."""
    sdp = [m for m in own_sdp if m.media == "audio"]
    if any(_names_cn(pt, m.rtpmap) for m in sdp for pt in m.payload_types):
        return True
    return any(_dtx_may_pause(st) or any(pt in CN_PAYLOAD_TYPES for pt in st.payload_types) for st in streams)
