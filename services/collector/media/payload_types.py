"""RTP payload types: the static table and the clock rate used for jitter.

Two different questions are answered here and they must not be confused:

* :func:`codec_for` -- what the payload *is* (encoding name, RTP clock rate), for
  reports and for the E-model. SDP ``a=rtpmap`` wins for dynamic types
  (RFC 3264 5.1, RFC 4566 6); static types come from RFC 3551 tables 4 and 5.
* :func:`jitter_clock_rate` -- the clock rate Wireshark's RTP analysis uses to
  convert timestamps to milliseconds. It differs on purpose in a few places
  (telephone-event gets 0, a static type ignores the rtpmap, dynamic types
  with no rtpmap get 0) and we reproduce it so that our jitter equals
  ``tshark -z rtp,streams``.
"""

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class StaticPayloadType:
    """One row of RFC 3551 table 4 (audio) or table 5 (video)."""

    name: str  #: encoding name as RFC 3551 spells it (and as SDP rtpmap would)
    media: str  #: 'audio', 'video' or 'av'
    clock_rate: int
    channels: int  #: 0 for video


#: RFC 3551 section 6, tables 4 and 5. Types 1, 2 and 19 are "reserved" in
#: RFC 3551 but were FS-1016, G721 and the old CN; Wireshark still gives them
#: 8000 Hz (ui/tap-rtp-analysis.c ``clock_map``, epan/rtp_pt.h PT_1016,
#: PT_G721, PT_CN_OLD), so we keep them for jitter parity.
STATIC_PAYLOAD_TYPES: Final[dict[int, StaticPayloadType]] = {
    0: StaticPayloadType("PCMU", "audio", 8000, 1),
    1: StaticPayloadType("1016", "audio", 8000, 1),
    2: StaticPayloadType("G721", "audio", 8000, 1),
    3: StaticPayloadType("GSM", "audio", 8000, 1),
    4: StaticPayloadType("G723", "audio", 8000, 1),
    5: StaticPayloadType("DVI4", "audio", 8000, 1),
    6: StaticPayloadType("DVI4", "audio", 16000, 1),
    7: StaticPayloadType("LPC", "audio", 8000, 1),
    8: StaticPayloadType("PCMA", "audio", 8000, 1),
    # RFC 3551 4.5.2: G.722 samples at 16 kHz but its RTP clock is 8000 Hz
    # "for historical reasons".
    9: StaticPayloadType("G722", "audio", 8000, 1),
    10: StaticPayloadType("L16", "audio", 44100, 2),
    11: StaticPayloadType("L16", "audio", 44100, 1),
    12: StaticPayloadType("QCELP", "audio", 8000, 1),
    13: StaticPayloadType("CN", "audio", 8000, 1),
    14: StaticPayloadType("MPA", "audio", 90000, 0),
    15: StaticPayloadType("G728", "audio", 8000, 1),
    16: StaticPayloadType("DVI4", "audio", 11025, 1),
    17: StaticPayloadType("DVI4", "audio", 22050, 1),
    18: StaticPayloadType("G729", "audio", 8000, 1),
    19: StaticPayloadType("CN", "audio", 8000, 1),
    25: StaticPayloadType("CelB", "video", 90000, 0),
    26: StaticPayloadType("JPEG", "video", 90000, 0),
    28: StaticPayloadType("nv", "video", 90000, 0),
    31: StaticPayloadType("H261", "video", 90000, 0),
    32: StaticPayloadType("MPV", "video", 90000, 0),
    33: StaticPayloadType("MP2T", "av", 90000, 0),
    34: StaticPayloadType("H263", "video", 90000, 0),
}

#: Comfort noise: RFC 3389 (PT 13) and the pre-RFC 3551 value 19. Wireshark's
#: analysis excludes CN packets, and the packet after one, from delta/jitter
#: statistics (ui/tap-rtp-analysis.c STAT_FLAG_PT_CN / STAT_FLAG_FOLLOW_PT_CN).
CN_PAYLOAD_TYPES: Final[frozenset[int]] = frozenset({13, 19})

#: RFC 3551 3: 96-127 are dynamic.
FIRST_DYNAMIC_PT: Final[int] = 96

#: Wireshark's ``rtpevent.event_payload_type_value`` preference default
#: (epan/dissectors/packet-rtpevent.c): with no SDP, PT 101 is telephone-event.
DEFAULT_TELEPHONE_EVENT_PT: Final[int] = 101

#: Clock rates of registered dynamic encodings, from Wireshark's
#: ui/tap-rtp-analysis.c ``mimetype_and_clock_map`` (itself from the IANA RTP
#: parameters registry). Used only when an rtpmap has no rate, and matched as a
#: case-insensitive *prefix*, longest entry first, exactly as Wireshark does.
_DYNAMIC_CLOCK_BY_PREFIX: Final[tuple[tuple[str, int], ...]] = (
    ("AMR", 8000),
    ("AMR-WB", 16000),
    ("BMPEG", 90000),
    ("BT656", 90000),
    ("DV", 90000),
    ("EVRC", 8000),
    ("EVRC0", 8000),
    ("EVRC1", 8000),
    ("EVRCB", 8000),
    ("EVRCB0", 8000),
    ("EVRCB1", 8000),
    ("EVRCWB", 16000),
    ("EVRCWB0", 16000),
    ("EVRCWB1", 16000),
    ("EVS", 16000),
    ("G7221", 16000),
    ("G726-16", 8000),
    ("G726-24", 8000),
    ("G726-32", 8000),
    ("G726-40", 8000),
    ("G729D", 8000),
    ("G729E", 8000),
    ("GSM-EFR", 8000),
    ("H263-1998", 90000),
    ("H263-2000", 90000),
    ("H264", 90000),
    ("MP1S", 90000),
    ("MP2P", 90000),
    ("MP4V-ES", 90000),
    ("mpa-robust", 90000),
    ("opus", 48000),
    ("pointer", 90000),
    ("raw", 90000),
    ("red", 1000),
    ("SMV", 8000),
    ("SMV0", 8000),
    ("t140", 1000),
    ("telephone-event", 8000),
)


def parse_rtpmap(value: str) -> tuple[str, int | None]:
    """Split an rtpmap value ``"encoding/clock[/channels]"`` (RFC 4566 6).

    Never raises: a missing or non-numeric clock gives ``None`` so that a
    sloppy SDP still names the codec.
    """
    parts = value.strip().split("/")
    name = parts[0].strip()
    rate: int | None = None
    if len(parts) > 1:
        try:
            parsed = int(parts[1].strip())
        except ValueError:
            parsed = 0
        rate = parsed if parsed > 0 else None
    return name, rate


def _dynamic_clock_by_name(name: str) -> int:
    """Wireshark's ``get_dyn_pt_clock_rate``: reverse scan of a sorted table, prefix match."""
    lowered = name.lower()
    for prefix, rate in reversed(_DYNAMIC_CLOCK_BY_PREFIX):
        if lowered.startswith(prefix.lower()):
            return rate
    return 0


def is_telephone_event_name(name: str) -> bool:
    """RFC 4733 7.1.1 registers ``telephone-event``; Wireshark compares it as a prefix, case-blind."""
    return name.lower().startswith("telephone-event")


def codec_for(pt: int, rtpmap: dict[int, str]) -> tuple[str | None, int | None]:
    """(encoding name, RTP clock rate) of a payload type.

    An rtpmap entry wins for dynamic types (RFC 3264 5.1) and also for static
    ones that carry one (an SDP may restate ``8 PCMA/8000``); a static type
    without an entry falls back to RFC 3551. A dynamic type with no rtpmap is
    unknown: ``(None, None)``.
    """
    mapped = rtpmap.get(pt)
    if mapped is not None:
        name, rate = parse_rtpmap(mapped)
        if name:
            if rate is None:
                static = STATIC_PAYLOAD_TYPES.get(pt)
                if static is not None and static.name.lower() == name.lower():
                    rate = static.clock_rate
                else:
                    rate = _dynamic_clock_by_name(name) or None
            return name, rate
    static = STATIC_PAYLOAD_TYPES.get(pt)
    if static is not None:
        return static.name, static.clock_rate
    return None, None


def jitter_clock_rate(pt: int, rtpmap: dict[int, str]) -> int:
    """The clock rate Wireshark's RTP analysis uses for ``pt``; 0 means "no jitter".

    Mirrors ``rtppacket_analyse`` in ui/tap-rtp-analysis.c: below 96 only the
    static table counts (an rtpmap is ignored); at 96 and above the rtpmap's
    rate is used, else the registry prefix table, and telephone-event is
    forced to 0 because its timestamp stays put for the whole event
    (RFC 4733 2.2.1) and would read as huge jitter. A dynamic type without
    an rtpmap gets 0 too: Wireshark names PT 101 'rtpevent' when there is no
    SDP, and that name matches no clock.
    """
    if pt < FIRST_DYNAMIC_PT:
        static = STATIC_PAYLOAD_TYPES.get(pt)
        return static.clock_rate if static is not None else 0
    mapped = rtpmap.get(pt)
    if mapped is None:
        return 0
    name, rate = parse_rtpmap(mapped)
    if is_telephone_event_name(name):
        return 0
    if rate is not None:
        return rate
    return _dynamic_clock_by_name(name)


def is_telephone_event(pt: int, rtpmap: dict[int, str]) -> bool:
    """Whether ``pt`` carries RFC 4733 events: by rtpmap, else Wireshark's PT 101 default."""
    mapped = rtpmap.get(pt)
    if mapped is not None:
        return is_telephone_event_name(parse_rtpmap(mapped)[0])
    return pt == DEFAULT_TELEPHONE_EVENT_PT
