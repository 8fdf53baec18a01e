"""Test-side reader: plain Ethernet/IPv4/UDP captures into our RtpStream, with SDP rtpmaps.

Deliberately independent of the collector's decoder (another module, tested
on its own): dpkt for the frames, a regex for ``a=rtpmap`` so that dynamic
payload types get the clock rate the SDP gave Wireshark.
"""

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import dpkt

from callqual.collector.media.rtp_header import parse_rtp
from callqual.collector.media.rtp_stream import RtpStream
from tests.tshark_reference import StreamKey

_CONN = re.compile(rb"^c=IN IP4 (\S+)", re.M)
_MEDIA = re.compile(rb"^m=audio (\d+) ", re.M)
_RTPMAP = re.compile(rb"^a=rtpmap:(\d+) (\S+)", re.M)

Udp = tuple[int, float, str, int, str, int, bytes]


def udp_datagrams(path: Path) -> Iterator[Udp]:
    """(frame number, ts, src, sport, dst, dport, payload) of every Ethernet/IPv4/UDP frame."""
    with path.open("rb") as handle:
        try:
            reader = dpkt.pcap.Reader(handle)
        except ValueError:
            handle.seek(0)
            reader = dpkt.pcapng.Reader(handle)
        for number, (ts, buf) in enumerate(reader, 1):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.udp.UDP):
                continue
            udp = ip.data
            # UDP length, not the frame: Ethernet pads short frames (rtpproxy/dtmf.pcap).
            data = bytes(udp.data)[: max(0, udp.ulen - 8)]
            src, dst = socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst)
            yield number, float(ts), src, udp.sport, dst, udp.dport, data


def sdp_rtpmaps(path: Path) -> dict[tuple[str, int], list[tuple[int, dict[int, str]]]]:
    """(connection ip, media port) -> [(frame, rtpmap)] of every SDP body in UDP payloads, in order.

    Several calls may reuse one address and port with different codecs
    (rtp-pcap/sip-rtp-speex.pcap), so a stream takes the last SDP before it.
    """
    maps: dict[tuple[str, int], list[tuple[int, dict[int, str]]]] = {}
    for number, *_, data in udp_datagrams(path):
        if b"m=audio" not in data:
            continue
        conn = _CONN.search(data)
        media = _MEDIA.search(data)
        if conn is None or media is None:
            continue
        rtpmap = {int(pt): enc.decode() for pt, enc in _RTPMAP.findall(data)}
        maps.setdefault((conn.group(1).decode(), int(media.group(1))), []).append((number, rtpmap))
    return maps


def _rtpmap_before(
    maps: dict[tuple[str, int], list[tuple[int, dict[int, str]]]], where: tuple[str, int], frame: int
) -> dict[int, str] | None:
    found = None
    for number, rtpmap in maps.get(where, []):
        if number < frame:
            found = rtpmap
    return found


def feed(path: Path, keys: set[StreamKey]) -> dict[StreamKey, RtpStream]:
    """Our streams for exactly the UDP flows + SSRCs tshark found, fed in capture order."""
    rtpmaps = sdp_rtpmaps(path)
    flows = {key[:4] for key in keys}
    streams: dict[StreamKey, RtpStream] = {}
    for number, ts, src, sport, dst, dport, data in udp_datagrams(path):
        if (src, sport, dst, dport) not in flows:
            continue
        header = parse_rtp(data)
        if header is None:
            continue
        pt, marker, seq, rtp_ts, ssrc, offset, length = header
        if marker and 72 <= pt <= 76:
            continue  # packet-rtp.c hands these to the RTCP dissector
        key = (src, sport, dst, dport, ssrc)
        if key not in keys:
            continue
        stream = streams.get(key)
        if stream is None:
            rtpmap = (
                _rtpmap_before(rtpmaps, (dst, dport), number)
                or _rtpmap_before(rtpmaps, (src, sport), number)
                or {}
            )
            stream = streams[key] = RtpStream(src, sport, dst, dport, ssrc, number, rtpmap)
        stream.add(ts, number, seq, rtp_ts, pt, marker, length, data[offset : offset + length])
    return streams
