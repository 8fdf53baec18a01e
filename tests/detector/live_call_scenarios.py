"""SIPp scenarios for the real mid-call alert tests: one-way audio, answered without RTP, busy.

A caller (UAC) and a callee (UAS) talk directly, no proxy. Media is SIPp's own
PCMA sample (``g711a.pcap``, 7.05 s, 30 ms packets) played with
``play_pcap_audio``, or that sample looped into one longer continuous stream
(:func:`looped_audio`); a side whose audio ends before the call goes silent
mid-call, a side with none sends no RTP at all.
"""

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


def _play(audio: Path | None) -> str:
    if audio is None:
        return ""
    return f'  <nop><action><exec play_pcap_audio="{audio}"/></action></nop>\n'


_SDP = """Content-Type: application/sdp
Content-Length: [len]

v=0
o=USER 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=sendrecv
"""


def caller_scenario(audio: Path | None, talk_ms: int) -> str:
    """INVITE, ACK the 200, start playing ``audio`` (if any), hang up ``talk_ms`` later."""
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
{_SDP.replace("USER", "alice")}]]></send>
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
{_play(audio)}  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]>;tag=[pid]uac[call_number]
To: <sip:bob@[remote_ip]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


def callee_scenario(audio: Path | None) -> str:
    """Ring, answer with SDP, start playing ``audio`` (if any), then wait for the caller's BYE."""
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
{_SDP.replace("USER", "bob")}]]></send>
  <recv request="ACK"/>
{_play(audio)}  <recv request="BYE"/>
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
{_SDP.replace("USER", "alice")}]]></send>
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
