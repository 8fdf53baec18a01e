"""ITU-T G.107 (06/2015) E-model: transmission rating R and estimated MOS of an RTP stream.

R = Ro - Is - Id - Ie,eff + A (G.107 eq. 7-1). We observe only the network
part of a call, so every term that depends on terminals and room noise is
taken at the G.107 Table 3 default values, and computed from them with the
standard's own equations rather than hard-coded, so that the well-known
"R = 93.2 with all defaults" (G.107 7.7 note) comes out of the code.

Assumptions, stated once:

* delay: the caller gives the one-way mouth-to-ear delay Ta in ms (network
  estimate, e.g. RTT/2 from RTCP, + jitter buffer + codec framing and
  look-ahead). Echo is taken as perfectly controlled at the default TELR of
  65 dB with T = Ta, and the four-wire loop Tr = 2 Ta (G.107 Table 3 note:
  T, Ta, Tr linked for a connection with no echo cancellation issues).
* equipment impairment Ie and packet-loss robustness Bpl per codec come
  from ITU-T G.113 Appendix I (11/2007) Tables I.1 and I.3; codecs it does
  not list get a documented fallback (see :data:`CODEC_IMPAIRMENTS`).
* A = 0 (G.107 Table 1, conventional wirebound).
* Wideband codecs (G.722, AMR-WB, Opus) belong to G.107.1's wideband scale;
  rated here on the narrowband scale as their narrowband-equivalent
  fallback, which under-rates them: R is comparable between calls, not a
  wideband quality claim.
"""

import math
from dataclasses import dataclass
from typing import Final

from callqual.schemas import RtpStreamStats

# ---- G.107 (06/2015) Table 3 default values -------------------------------
SLR: Final[float] = 8.0  #: send loudness rating, dB
RLR: Final[float] = 2.0  #: receive loudness rating, dB
STMR: Final[float] = 15.0  #: sidetone masking rating, dB
LSTR: Final[float] = 18.0  #: listener sidetone rating, dB
DS: Final[float] = 3.0  #: D-value of telephone, send side
TELR: Final[float] = 65.0  #: talker echo loudness rating, dB
WEPL: Final[float] = 110.0  #: weighted echo path loss, dB
QDU: Final[float] = 1.0  #: number of quantization distortion units
NC: Final[float] = -70.0  #: circuit noise referred to 0 dBr point, dBm0p
NFOR: Final[float] = -64.0  #: noise floor at the receive side, dBmp
PS: Final[float] = 35.0  #: room noise at the send side, dB(A)
PR: Final[float] = 35.0  #: room noise at the receive side, dB(A)
ADVANTAGE: Final[float] = 0.0  #: A, G.107 Table 1 conventional wirebound
#: G.107 (2015) 7.4 delay impairment Idd: mT (ms) and sT defaults.
M_T: Final[float] = 100.0
S_T: Final[float] = 1.0
#: G.107 3.6: BurstR = 1 for random loss, >1 bursty; Table 3 gives 1..8 as the range.
BURST_R_MIN: Final[float] = 1.0
BURST_R_MAX: Final[float] = 8.0


@dataclass(frozen=True, slots=True)
class CodecImpairment:
    ie: float  #: equipment impairment factor Ie
    bpl: float  #: packet-loss robustness factor Bpl
    source: str  #: where the pair comes from


_G711_PLC = CodecImpairment(0.0, 25.1, "G.113 App. I Tables I.1/I.3: G.711 with Appendix I PLC")
_G711_NO_PLC = CodecImpairment(0.0, 4.3, "G.113 App. I Table I.3: G.711 without PLC (random loss)")
_G729A = CodecImpairment(11.0, 19.0, "G.113 App. I Tables I.1/I.3: G.729A + VAD")
_G723 = CodecImpairment(15.0, 16.1, "G.113 App. I Tables I.1/I.3: G.723.1 6.3 kbit/s + VAD")
_GSM_EFR = CodecImpairment(5.0, 10.0, "G.113 App. I Tables I.1/I.3: GSM-EFR")
#: Fallback for a codec without published Bpl: its Ie from G.113 Table I.1
#: where listed, and the G.729A Bpl (a CELP codec with built-in concealment),
#: the most widely used published figure for such codecs.
_FALLBACK_BPL: Final[float] = 19.0


def _ie_only(ie: float, what: str) -> CodecImpairment:
    """A codec G.113 Table I.1 lists with an Ie but no Bpl: Bpl takes the fallback."""
    return CodecImpairment(ie, _FALLBACK_BPL, f"G.113 App. I Table I.1: {what}; Bpl fallback {_FALLBACK_BPL}")


#: Encoding name (lower case, as in SDP/RFC 3551) -> Ie/Bpl.
CODEC_IMPAIRMENTS: Final[dict[str, CodecImpairment]] = {
    "pcmu": _G711_PLC,
    "pcma": _G711_PLC,
    "g711": _G711_PLC,
    "pcmu-noplc": _G711_NO_PLC,
    "pcma-noplc": _G711_NO_PLC,
    "g729": _G729A,
    "g729a": _G729A,
    "g723": _G723,
    "g7231": _G723,
    "gsm-efr": _GSM_EFR,
    "gsm": _ie_only(20.0, "GSM 06.10 FR Ie=20"),
    "g726-40": CodecImpairment(
        2.0, _FALLBACK_BPL, "G.113 App. I Table I.1: G.726 40 kbit/s Ie=2; Bpl fallback"
    ),
    "g726-32": CodecImpairment(
        7.0, _FALLBACK_BPL, "G.113 App. I Table I.1: G.726 32 kbit/s Ie=7; Bpl fallback"
    ),
    "g726-24": CodecImpairment(
        25.0, _FALLBACK_BPL, "G.113 App. I Table I.1: G.726 24 kbit/s Ie=25; Bpl fallback"
    ),
    "g726-16": CodecImpairment(
        50.0, _FALLBACK_BPL, "G.113 App. I Table I.1: G.726 16 kbit/s Ie=50; Bpl fallback"
    ),
    "g721": CodecImpairment(
        7.0, _FALLBACK_BPL, "G.113 App. I Table I.1: G.721 = G.726 32 kbit/s; Bpl fallback"
    ),
    "g728": _ie_only(7.0, "G.728 16 kbit/s Ie=7"),
    "amr": CodecImpairment(5.0, 10.0, "GSM-EFR figures for AMR 12.2 (same algorithm as EFR, 3GPP TS 26.090)"),
    # Not in G.113 Appendix I: narrowband-equivalent fallbacks, see module docstring.
    "ilbc": CodecImpairment(11.0, _FALLBACK_BPL, "fallback: G.729A-like (not in G.113 App. I)"),
    "g722": _G711_PLC,
    "amr-wb": CodecImpairment(5.0, 10.0, "fallback: AMR figures on the narrowband scale"),
    "opus": _G711_PLC,
    "silk": _G711_PLC,
    "speex": CodecImpairment(11.0, _FALLBACK_BPL, "fallback: G.729A-like (not in G.113 App. I)"),
}

#: Unknown codec: G.711 with PLC, the most common VoIP payload, so an unknown
#: name is rated on loss and delay alone rather than penalised arbitrarily.
UNKNOWN_CODEC: Final[CodecImpairment] = CodecImpairment(0.0, 25.1, "fallback: G.711 with PLC")


def impairment_for(codec: str | None) -> CodecImpairment:
    """Ie/Bpl for an SDP/RFC 3551 encoding name (case-blind, 'AAL2-' prefix ignored)."""
    if not codec:
        return UNKNOWN_CODEC
    name = codec.strip().lower()
    name = name.removeprefix("aal2-")
    found = CODEC_IMPAIRMENTS.get(name)
    if found is None:
        found = CODEC_IMPAIRMENTS.get(name.replace(".", ""))
    return found if found is not None else UNKNOWN_CODEC


def _log10_sum(*levels_db: float) -> float:
    return 10.0 * math.log10(sum(10.0 ** (level / 10.0) for level in levels_db))


def _basic_terms() -> tuple[float, float, float]:
    """(Ro, Is, No) from the Table 3 defaults, G.107 (06/2015) 7.2 and 7.3."""
    olr = SLR + RLR
    nos = PS - SLR - DS - 100.0 + 0.004 * (PS - olr - DS - 14.0) ** 2  # eq. 7-6
    pre = PR + 10.0 * math.log10(1.0 + 10.0 ** ((10.0 - LSTR) / 10.0))  # eq. 7-8
    nor = RLR - 121.0 + pre + 0.008 * (pre - 35.0) ** 2  # eq. 7-7
    nfo = NFOR + RLR  # eq. 7-9
    no = _log10_sum(NC, nos, nor, nfo)  # eq. 7-5
    ro = 15.0 - 1.5 * (SLR + no)  # eq. 7-4
    # Iq, eq. 7-11..7-14
    q = 37.0 - 15.0 * math.log10(QDU)
    g = 1.07 + 0.258 * q + 0.0602 * q * q
    y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0
    z = 46.0 / 30.0 - g / 40.0
    iq = 15.0 * math.log10(1.0 + 10.0**y + 10.0**z)
    # Ist, eq. 7-15/7-16 with T = 0 for the sidetone masking (echo handled in Id)
    stmro = -10.0 * math.log10(10.0 ** (-STMR / 10.0) + 10.0 ** (-TELR / 10.0))
    ist = (
        12.0 * (1.0 + ((stmro - 13.0) / 6.0) ** 8) ** (1.0 / 8.0)
        - 28.0 * (1.0 + ((stmro + 1.0) / 19.4) ** 35) ** (1.0 / 35.0)
        - 13.0 * (1.0 + ((stmro - 3.0) / 33.0) ** 13) ** (1.0 / 13.0)
        + 29.0
    )
    # Iolr, eq. 7-17/7-18
    xolr = olr + 0.2 * (64.0 + no - RLR)
    iolr = 20.0 * ((1.0 + (xolr / 8.0) ** 8) ** (1.0 / 8.0) - xolr / 8.0)
    return ro, iolr + ist + iq, no


_RO, _IS, _NO = _basic_terms()


def delay_impairment(one_way_delay_ms: float) -> float:
    """Id = Idte + Idle + Idd (G.107 (06/2015) 7.4, eqs. 7-19..7-28), with T = Ta, Tr = 2 Ta."""
    ta = max(0.0, one_way_delay_ms)
    t = ta
    tr = 2.0 * ta
    # Talker echo
    roe = -1.5 * (_NO - RLR)
    terv = TELR - 40.0 * math.log10((1.0 + t / 10.0) / (1.0 + t / 150.0)) + 6.0 * math.exp(-0.3 * t * t)
    re = 80.0 + 2.5 * (terv - 14.0)
    idte = ((roe - re) / 2.0 + math.sqrt((roe - re) ** 2 / 4.0 + 100.0) - 1.0) * (1.0 - math.exp(-t))
    # Listener echo
    rle = 10.5 * (WEPL + 7.0) * float((tr + 1.0) ** -0.25)
    idle = (_RO - rle) / 2.0 + math.sqrt((_RO - rle) ** 2 / 4.0 + 169.0)
    # Absolute delay
    idd = 0.0
    if ta > M_T:
        x = math.log10(ta / M_T) / math.log10(2.0)
        idd = 25.0 * (
            (1.0 + x ** (6.0 * S_T)) ** (1.0 / (6.0 * S_T))
            - 3.0 * (1.0 + (x / 3.0) ** (6.0 * S_T)) ** (1.0 / (6.0 * S_T))
            + 2.0
        )
    return idte + idle + idd


def effective_equipment_impairment(ie: float, bpl: float, loss_ratio: float, burst_ratio: float) -> float:
    """Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)  (G.107 (06/2015) eq. 7-29), Ppl in %."""
    ppl = min(max(loss_ratio, 0.0), 1.0) * 100.0
    burst = min(max(burst_ratio, BURST_R_MIN), BURST_R_MAX)
    if ppl == 0.0:
        return ie
    return ie + (95.0 - ie) * ppl / (ppl / burst + bpl)


def r_factor(codec: str | None, loss_ratio: float, burst_ratio: float, one_way_delay_ms: float) -> float:
    """Transmission rating R (G.107 eq. 7-1) for a codec, a loss ratio (0..1), BurstR and one-way delay."""
    imp = impairment_for(codec)
    if not math.isfinite(loss_ratio):
        loss_ratio = 1.0
    if not math.isfinite(burst_ratio):
        burst_ratio = BURST_R_MIN
    if not math.isfinite(one_way_delay_ms):
        one_way_delay_ms = 0.0
    ie_eff = effective_equipment_impairment(imp.ie, imp.bpl, loss_ratio, burst_ratio)
    return _RO - _IS - delay_impairment(one_way_delay_ms) - ie_eff + ADVANTAGE


def mos_from_r(r: float) -> float:
    """MOS_CQE from R, G.107 (06/2015) Annex B eq. B-4 (narrowband)."""
    if not math.isfinite(r) or r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6


#: Delay assumed when nothing better is known: jitter buffer of two 20 ms
#: frames plus 20 ms packetisation and a short LAN path, in ms. G.114 puts
#: the "most applications" limit at 150 ms; this stays well below it.
DEFAULT_ONE_WAY_DELAY_MS: Final[float] = 60.0


def loss_ratio(report: RtpStreamStats) -> float:
    """The share of a stream's packets the network lost, 0..1.

    From RFC 3550 extended sequence numbers when the stream has them (robust to
    reordering across the 16-bit wrap and to duplicates), else Wireshark's
    lost/expected floored at 0 (duplicates make it negative).
    """
    if report.lost_rfc3550 is not None:
        received = report.packets - report.duplicates
        expected = received + report.lost_rfc3550
        return report.lost_rfc3550 / expected if expected > 0 else 0.0
    if report.expected <= 0:
        return 0.0
    return min(1.0, max(0, report.lost) / report.expected)


def stream_mos(report: RtpStreamStats, one_way_delay_ms: float | None = None) -> tuple[float, float] | None:
    """(R, MOS) of an RTP stream report; ``None`` for streams with nothing to rate.

    Loss is :func:`loss_ratio`; the delay, unless given (e.g. RTT/2 from RTCP), is
    :data:`DEFAULT_ONE_WAY_DELAY_MS` plus the stream's mean jitter (a jitter
    buffer holds about that much more).
    """
    if report.packets <= 0 or report.expected <= 0:
        return None
    loss = loss_ratio(report)
    if one_way_delay_ms is None:
        one_way_delay_ms = DEFAULT_ONE_WAY_DELAY_MS + max(0.0, report.mean_jitter_ms)
    r = r_factor(report.codec, loss, report.burst_ratio, one_way_delay_ms)
    return r, mos_from_r(r)
