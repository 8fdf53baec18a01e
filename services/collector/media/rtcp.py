"""RTCP sender/receiver reports (RFC 3550 6.4) out of compound datagrams.

A datagram is a compound of RTCP packets (RFC 3550 6.1): typically SR or RR
followed by SDES, sometimes BYE, APP, feedback (RFC 4585) or XR (RFC 3611).
We walk it by the length field of each packet, turn every SR/RR into one
:class:`~callqual.schemas.RtcpEvent` and skip the rest -- all of them, not
just the first, because endpoints do put several SR/RR in one datagram.

Garbage raises :class:`RtcpParseError` with a stable ``reason`` the collector
counts; a compound whose tail is damaged still yields the reports before the
damage, with the reason appended to the optional ``errors`` list.
"""

import struct
from typing import Final, Literal

from callqual.collector.errors import DecodeError
from callqual.schemas import RtcpEvent, RtcpReportBlock
from callqual.schemas.base import SCHEMA_VERSION

#: RFC 3550 12.1 packet types; 205-207 are RFC 4585 RTPFB/PSFB and RFC 3611 XR,
#: 208-211 later IANA assignments (AVB, RSI RFC 5760, TOKEN RFC 6284, IDMS RFC 7272).
RTCP_SR: Final[int] = 200
RTCP_RR: Final[int] = 201
_FIRST_RTCP_PT: Final[int] = 200
_LAST_RTCP_PT: Final[int] = 211

#: RFC 3550 6.4.1: SR sender info is 20 octets after the sender SSRC; a report block is 24.
_SENDER_INFO_LEN: Final[int] = 20
_BLOCK_LEN: Final[int] = 24

#: RFC 5905 6: seconds from the NTP era 0 epoch (1900) to the Unix epoch (1970).
NTP_UNIX_OFFSET: Final[int] = 2_208_988_800

#: An RTT from the capture clock is only believed below this: past it the
#: capture clock and the sender's NTP clock evidently disagree.
_MAX_PLAUSIBLE_RTT_S: Final[float] = 10.0
#: Bound on remembered SRs per ``sr_times`` map (a few per stream is plenty:
#: LSR names the most recent SR, RFC 3550 6.4.1).
_SR_MEMORY: Final[int] = 256

_HEADER: Final = struct.Struct("!BBH")
_U32: Final = struct.Struct("!I")
_SR_INFO: Final = struct.Struct("!IIIII")
_BLOCK: Final = struct.Struct("!IIIIII")


class RtcpParseError(DecodeError):
    """A datagram that should be RTCP is not; ``reason`` is one of ``rtcp.*``."""


def looks_like_rtcp(payload: bytes) -> bool:
    """Cheap test for RTCP on a port with no signalling (RFC 5761 4, RFC 3550 A.2).

    Version 2, a packet type in the RTCP range and a first length that fits.
    """
    if len(payload) < 8:
        return False
    b0, pt, length = _HEADER.unpack_from(payload)
    if b0 & 0xC0 != 0x80 or not (_FIRST_RTCP_PT <= pt <= _LAST_RTCP_PT):
        return False
    words: int = length + 1
    return words * 4 <= len(payload)


def ntp_middle32(unix_ts: float) -> int:
    """The middle 32 bits of the NTP timestamp of ``unix_ts`` (RFC 3550 4, 6.4.1 LSR units: 1/65536 s)."""
    return int((unix_ts + NTP_UNIX_OFFSET) * 65536.0) & 0xFFFFFFFF


def _signed24(value: int) -> int:
    """RFC 3550 6.4.1: cumulative number of packets lost is a signed 24-bit integer."""
    return value - 0x1000000 if value & 0x800000 else value


def _rtt_ms(lsr: int, dlsr: int, ts: float, sr_times: dict[int, float] | None) -> float | None:
    """Round trip per RFC 3550 6.4.1 (A - LSR - DLSR), where A is the arrival time.

    Preferred: the capture time of the SR that LSR names, if we saw it; then
    RTT = (arrival of this report - capture of that SR) - DLSR, all on the
    capture clock -- what Wireshark's ``rtcp.roundtrip-delay`` does, and it
    measures the loop from the capture point to the reporter and back.
    Fallback: A is the capture time itself converted to NTP, which is only
    right when the capture runs on (or is synchronised with) the SR sender's
    clock -- i.e. the reports seen at the sender. Results that are negative
    or implausibly large (clocks evidently not synchronised) are dropped.
    LSR = 0 means no SR has been received yet (RFC 3550 6.4.1): no RTT.
    """
    if lsr == 0:
        return None
    if sr_times is not None:
        sr_ts = sr_times.get(lsr)
        if sr_ts is not None:
            rtt = (ts - sr_ts) - dlsr / 65536.0
            return rtt * 1000.0 if 0.0 <= rtt < _MAX_PLAUSIBLE_RTT_S else None
    units = (ntp_middle32(ts) - lsr - dlsr) & 0xFFFFFFFF
    rtt = units / 65536.0
    return rtt * 1000.0 if rtt < _MAX_PLAUSIBLE_RTT_S else None


def _remember_sr(sr_times: dict[int, float], middle: int, ts: float) -> None:
    if middle not in sr_times and len(sr_times) >= _SR_MEMORY:
        del sr_times[next(iter(sr_times))]
    sr_times[middle] = ts


def rtcp_events(  # noqa: PLR0917 - mirrors the Payload fields the collector has at hand
    payload: bytes,
    ts: float,
    frame: int,
    src_ip: str,
    src_port: int,
    dst_ip: str,
    dst_port: int,
    call_id: str | None,
    clock_rates: dict[int, int] | None = None,
    *,
    sr_times: dict[int, float] | None = None,
    errors: list[str] | None = None,
) -> list[RtcpEvent]:
    """One event per SR/RR in a (compound) RTCP datagram.

    ``clock_rates`` maps a *media* SSRC to its RTP clock rate so that the
    interarrival jitter (RFC 3550 6.4.1, in timestamp units) can be given in
    ms; unknown SSRCs get ``jitter_ms=None``. ``sr_times`` is a map the
    caller keeps per session (or per collector): SRs seen here are recorded
    into it (NTP middle 32 bits -> capture time) so that a later report's LSR
    can be matched; see :func:`_rtt_ms`.

    Raises :class:`RtcpParseError` when the first packet is already invalid;
    later damage only ends the walk (reason appended to ``errors``).
    """
    size = len(payload)
    events: list[RtcpEvent] = []
    offset = 0
    while offset < size:
        reason = _walk_one(payload, offset, size)
        if reason is not None:
            if offset == 0:
                raise RtcpParseError(reason, f"at offset {offset} of {size}")
            if errors is not None:
                errors.append(reason)
            break
        b0, pt, length = _HEADER.unpack_from(payload, offset)
        end = offset + (length + 1) * 4
        count = b0 & 0x1F
        if pt in (RTCP_SR, RTCP_RR):
            body = offset + 4
            if body + 4 > end:
                reason = "rtcp.short_report"
            else:
                sender = _U32.unpack_from(payload, body)[0]
                blocks_at = body + 4
                if pt == RTCP_SR:
                    if blocks_at + _SENDER_INFO_LEN > end:
                        reason = "rtcp.short_sender_info"
                    else:
                        msw, lsw = _SR_INFO.unpack_from(payload, blocks_at)[:2]
                        if sr_times is not None:
                            _remember_sr(sr_times, ((msw & 0xFFFF) << 16) | (lsw >> 16), ts)
                        blocks_at += _SENDER_INFO_LEN
                if reason is None and blocks_at + count * _BLOCK_LEN > end:
                    reason = "rtcp.short_report_block"
            if reason is not None:
                if offset == 0 and not events:
                    raise RtcpParseError(reason, f"at offset {offset} of {size}")
                if errors is not None:
                    errors.append(reason)
                break
            blocks = [
                _block(payload, blocks_at + i * _BLOCK_LEN, ts, clock_rates, sr_times) for i in range(count)
            ]
            kind: Literal["SR", "RR"] = "SR" if pt == RTCP_SR else "RR"
            # trusted: every field is built here from unpacked integers (~15 us less a packet)
            events.append(
                RtcpEvent.trusted(
                    kind="rtcp",
                    schema_version=SCHEMA_VERSION,
                    frame=frame,
                    ts=ts,
                    src_ip=src_ip,
                    src_port=src_port,
                    dst_ip=dst_ip,
                    dst_port=dst_port,
                    call_id=call_id,
                    packet_type=kind,
                    sender_ssrc=sender,
                    blocks=blocks,
                )
            )
        # SDES, BYE, APP, RTPFB/PSFB, XR...: skipped whole by their length.
        offset = end
    return events


def _walk_one(payload: bytes, offset: int, size: int) -> str | None:
    """RFC 3550 A.2 checks on one packet of a compound: a reason string if it is not walkable."""
    if offset + 4 > size:
        return "rtcp.truncated_header"
    b0, pt, length = _HEADER.unpack_from(payload, offset)
    if b0 & 0xC0 != 0x80:
        return "rtcp.bad_version"
    if not (_FIRST_RTCP_PT <= pt <= _LAST_RTCP_PT) and pt not in (192, 193, 195):
        # 192/193 (RFC 2032 FIR/NACK) and 195 (RFC 2029 IJ) are legacy types still seen.
        return "rtcp.bad_packet_type"
    end = offset + (length + 1) * 4
    if end > size:
        return "rtcp.length_overrun"
    if b0 & 0x20 and end != size:
        # RFC 3550 6.4.1 / A.2: only the last packet of a compound may be padded.
        return "rtcp.padding_not_last"
    return None


def _block(
    payload: bytes,
    at: int,
    ts: float,
    clock_rates: dict[int, int] | None,
    sr_times: dict[int, float] | None,
) -> RtcpReportBlock:
    ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(payload, at)
    clock = clock_rates.get(ssrc) if clock_rates else None
    return RtcpReportBlock.trusted(
        ssrc=ssrc,
        # RFC 3550 6.4.1: fixed point, binary point at the left edge (x/256).
        fraction_lost=(lost_word >> 24) / 256.0,
        cumulative_lost=_signed24(lost_word & 0xFFFFFF),
        highest_seq=highest,
        jitter_ms=jitter * 1000.0 / clock if clock else None,
        lsr=lsr,
        dlsr=dlsr,
        rtt_ms=_rtt_ms(lsr, dlsr, ts, sr_times),
    )
