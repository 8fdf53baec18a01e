"""SIPp scenarios for the real mid-call alert tests: one-way audio, answered without RTP, busy, hold.

A caller (UAC) and a callee (UAS) talk directly, no proxy. Media is SIPp's own
PCMA sample (``g711a.pcap``, 7.05 s, 30 ms packets) played with
``play_pcap_audio``, that sample looped into one longer continuous stream
(:func:`looped_audio`), or its bytes re-packetised at another ptime, with
silence-suppressed pauses if asked (:func:`rtp_audio`); a side whose audio ends
before the call goes silent mid-call, a side with none sends no RTP at all.
"""

from collections.abc import Sequence
from pathlib import Path

import dpkt

from tests.detector.sip_lab import BUSY_SCENARIO
from tests.shared_captures import PCAPS

G711A_PCAP = PCAPS / "sipp" / "g711a.pcap"
_PTIME_S, _SAMPLES = 0.030, 240


def looped_audio(dst: Path, times: int) -> Path:
    """``g711a.pcap`` ``times`` over as one stream: sequence, RTP timestamp and capture time run on.

    SIPp sends a file's RTP headers as they are, so playing the sample twice would restart them
    (a jump a receiver sees as duplicates and jitter); one longer file keeps the stream clean.
    """
    with G711A_PCAP.open("rb") as fh:
        packets = list(dpkt.pcap.Reader(fh))
    span = len(packets) * _PTIME_S
    with dst.open("wb") as out:
        writer = dpkt.pcap.Writer(out)
        for k in range(times):
            for i, (_, buf) in enumerate(packets):
                eth = dpkt.ethernet.Ethernet(buf)
                rtp = bytearray(eth.data.data.data)
                seq = (int.from_bytes(rtp[2:4], "big") + k * len(packets)) & 0xFFFF
                rtp_ts = (int.from_bytes(rtp[4:8], "big") + k * len(packets) * _SAMPLES) & 0xFFFFFFFF
                rtp[2:4], rtp[4:8] = seq.to_bytes(2, "big"), rtp_ts.to_bytes(4, "big")
                eth.data.data.data = bytes(rtp)
                eth.data.data.sum = 0
                writer.writepkt(bytes(eth), packets[0][0] + k * span + i * _PTIME_S)
    return dst


def rtp_audio(
    dst: Path, ptime_ms: int, segments: Sequence[tuple[float, bool]], *, comfort_noise: bool = False
) -> Path:
    """PCMA at ``ptime_ms`` from the sample's bytes: talkspurts and silences, ``(seconds, talking)``.

    As a silence-suppressing sender does it (RFC 3551 4.1): nothing during a silence, the RTP
    timestamp running on over it, a marker on each talkspurt's first packet; with
    ``comfort_noise`` one RFC 3389 CN packet (PT 13, noise level -64 dBov) opens each silence.
    """
    with G711A_PCAP.open("rb") as fh:
        packets = list(dpkt.pcap.Reader(fh))
    t0, template = packets[0]
    voice = b"".join(bytes(dpkt.ethernet.Ethernet(buf).data.data.data)[12:] for _, buf in packets)
    ssrc = bytes(dpkt.ethernet.Ethernet(template).data.data.data)[8:12]
    size, step = 8 * ptime_ms, ptime_ms / 1000
    seq, rtp_ts, at, n = 1000, 0, float(t0), 0
    with dst.open("wb") as out:
        writer = dpkt.pcap.Writer(out)

        def send(pt: int, marker: bool, payload: bytes) -> None:
            eth = dpkt.ethernet.Ethernet(template)
            udp = eth.data.data
            head = bytes([0x80, pt | (0x80 if marker else 0)]) + (seq & 0xFFFF).to_bytes(2, "big")
            udp.data = head + (rtp_ts & 0xFFFFFFFF).to_bytes(4, "big") + ssrc + payload
            udp.ulen, udp.sum = 8 + len(udp.data), 0
            eth.data.len, eth.data.sum = 20 + udp.ulen, 0
            writer.writepkt(bytes(eth), at)

        for seconds, talking in segments:
            count = round(seconds / step)
            if talking:
                for i in range(count):
                    start = (n * size) % (len(voice) - size)
                    send(8, i == 0, voice[start : start + size])
                    seq, rtp_ts, at, n = seq + 1, rtp_ts + size, at + step, n + 1
            else:
                if comfort_noise:
                    send(13, False, bytes([64]))
                    seq += 1
                rtp_ts, at = rtp_ts + count * size, at + count * step
    return dst


def _play(audio: Path | None) -> str:
    if audio is None:
        return ""
    return f'  <nop><action><exec play_pcap_audio="{audio}"/></action></nop>\n'


def _sdp(user: str, *, comfort_noise: bool = False, direction: str = "sendrecv", version: int = 1) -> str:
    """PCMA, with RFC 3389 comfort noise offered (PT 13) when the sender may suppress silence."""
    pts, cn = ("8 13", "a=rtpmap:13 CN/8000\n") if comfort_noise else ("8", "")
    return f"""Content-Type: application/sdp
Content-Length: [len]

v=0
o={user} 1 {version} IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP {pts}
a=rtpmap:8 PCMA/8000
{cn}a={direction}
"""


def _hold(talk_ms: int, hold_after_ms: int | None) -> str:
    """Talk, or talk then put the callee on hold (re-INVITE ``sendonly``, RFC 3264 8.4), talk on."""
    if hold_after_ms is None:
        return f'  <pause milliseconds="{talk_ms}"/>\n'
    return f"""  <pause milliseconds="{hold_after_ms}"/>
  <send retrans="500"><![CDATA[
INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]>;tag=[pid]uac[call_number]
To: <sip:bob@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
{_sdp("alice", direction="sendonly", version=2)}]]></send>
  <recv response="200"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]>;tag=[pid]uac[call_number]
To: <sip:bob@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="{talk_ms - hold_after_ms}"/>
"""


def caller_scenario(audio: Path | None, talk_ms: int, hold_after_ms: int | None = None) -> str:
    """INVITE, ACK the 200, start playing ``audio`` (if any), hang up ``talk_ms`` later.

    With ``hold_after_ms`` the caller puts the callee on hold that long after the ACK (and goes
    on sending: music on hold).
    """
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller: talks {talk_ms} ms, then hangs up">
  <send retrans="500"><![CDATA[
INVITE sip:bob@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]>;tag=[pid]uac[call_number]
To: <sip:bob@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
{_sdp("alice")}]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]>;tag=[pid]uac[call_number]
To: <sip:bob@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
{_play(audio)}{_hold(talk_ms, hold_after_ms)}  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]>;tag=[pid]uac[call_number]
To: <sip:bob@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {2 if hold_after_ms is None else 3} BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


def callee_scenario(audio: Path | None, *, comfort_noise: bool = False, held: bool = False) -> str:
    """Ring, answer with SDP, start playing ``audio`` (if any), then wait for the caller's BYE.

    ``comfort_noise`` offers CN in the answer; ``held`` answers the caller's hold re-INVITE
    ``recvonly`` first.
    """
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee: answers, plays {audio}">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:bob@[local_ip]:[local_port]>
{_sdp("bob", comfort_noise=comfort_noise)}]]></send>
  <recv request="ACK"/>
{_play(audio)}{_HELD if held else ""}  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


#: The held callee's answer to the hold re-INVITE: it stops sending (RFC 3264 8.4).
_HELD = f"""  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:bob@[local_ip]:[local_port]>
{_sdp("bob", direction="recvonly", version=2)}]]></send>
  <recv request="ACK"/>
"""


def refused_callee_scenario(status: str) -> str:
    """Ring, then refuse with ``status`` (e.g. "503 Service Unavailable"): sip_lab's busy UA, re-coded."""
    return BUSY_SCENARIO.replace("486 Busy Here", status)


#: An INVITE refused with STATUS, ACKed on the INVITE's branch.
REFUSED_CALLER_SCENARIO = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller: refused">
  <send retrans="500"><![CDATA[
INVITE sip:bob@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]>;tag=[pid]uac[call_number]
To: <sip:bob@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
{_sdp("alice")}]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="STATUS"/>
  <send><![CDATA[
ACK sip:bob@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-1]
From: <sip:alice@[local_ip]>;tag=[pid]uac[call_number]
To: <sip:bob@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"""
