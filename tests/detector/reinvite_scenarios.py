"""SIPp scenarios for one call whose session is refreshed from both sides and held by the callee.

The callee (UAS) drives the timeline; the caller (UAC) answers what comes.
Both play ``g711a.pcap`` (SIPp's own PCMA sample, 7 s) at each other, so
the capture has real RTP both ways through every re-INVITE:

1. callee re-INVITE (session refresh, ``refresher=uas``)
2. caller re-INVITE (session refresh, ``refresher=uac``)
3. callee hold (``a=sendonly``, the caller answers ``recvonly``)
4. callee resume (``sendrecv``)
5. callee re-INVITE moving its media to ``MOVED_PORT`` (the caller's RTP follows it)
6. callee BYE

The callee refreshes last before the BYE: that is what made the latest
offer the callee's and flipped the call's direction (issue 11).
"""

G711A_PCAP = "/usr/share/sip-tester/g711a.pcap"
#: The callee's second media port (SIPp's own media port is set with -mp).
MOVED_PORT = 6200
RE_INVITES = 5


def _sdp(user: str, version: int, direction: str, port: str = "[media_port]") -> str:
    return f"""Content-Type: application/sdp
Content-Length: [len]

v=0
o={user} 1 {version} IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio {port} RTP/AVP 8
a=rtpmap:8 PCMA/8000
a={direction}
"""


def _ok(user: str, version: int, direction: str, to_tag: str = "", port: str = "[media_port]") -> str:
    return f"""  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]{to_tag}
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:{user}@[local_ip]:[local_port]>
{_sdp(user, version, direction, port)}]]></send>
"""


def _callee_request(method: str, cseq: int, body: str = "Content-Length: 0\n", extra: str = "") -> str:
    return f"""  <send retrans="500"><![CDATA[
{method} [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bob@[local_ip]>;tag=[pid]uas[call_number]
To: <sip:alice@[remote_ip]>;tag=[$ftag]
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:bob@[local_ip]:[local_port]>
{extra}Max-Forwards: 70
{body}
]]></send>
"""


def _callee_reinvite(
    cseq: int, version: int, direction: str, extra: str = "", port: str = "[media_port]"
) -> str:
    ack = _callee_request("ACK", cseq).replace('<send retrans="500">', "<send>")
    return (
        _callee_request("INVITE", cseq, _sdp("bob", version, direction, port), extra)
        + '  <recv response="200"/>\n'
        + ack
    )


_FROM_TAG = r'<ereg regexp="tag=([^;&gt; ]+)" search_in="hdr" header="From:" assign_to="junk1,ftag"/>'
_CONTACT = (
    r'<ereg regexp="&lt;(sip:[^&gt;]+)&gt;" search_in="hdr" header="Contact:" assign_to="junk2,contact"/>'
)


def callee_scenario() -> str:
    refresh = "Session-Expires: 90;refresher=uas\n"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee: refreshes from both sides, hold, resume and new ports from the callee">
  <recv request="INVITE">
    <action>
      {_FROM_TAG}
      {_CONTACT}
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
{_ok("bob", 1, "sendrecv", ";tag=[pid]uas[call_number]")}  <recv request="ACK"/>
  <nop><action><exec play_pcap_audio="{G711A_PCAP}"/></action></nop>
  <pause milliseconds="1000"/>
{_callee_reinvite(1, 2, "sendrecv", refresh)}  <recv request="INVITE"/>
{_ok("bob", 3, "sendrecv")}  <recv request="ACK"/>
  <pause milliseconds="1000"/>
{_callee_reinvite(2, 4, "sendonly")}  <pause milliseconds="1500"/>
{_callee_reinvite(3, 5, "sendrecv")}  <pause milliseconds="1000"/>
{_callee_reinvite(4, 6, "sendrecv", refresh, port=str(MOVED_PORT))}  <pause milliseconds="3000"/>
{_callee_request("BYE", 5)}  <recv response="200"/>
  <Reference variables="junk1,junk2"/>
</scenario>
"""


def _caller_request(
    method: str, cseq: int, uri: str, body: str = "Content-Length: 0\n", extra: str = ""
) -> str:
    retrans = "" if method == "ACK" else ' retrans="500"'
    to_tag = "" if uri.startswith("sip:") else "[peer_tag_param]"
    return f"""  <send{retrans}><![CDATA[
{method} {uri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[local_ip]>;tag=[pid]uac[call_number]
To: <sip:bob@[remote_ip]>{to_tag}
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:alice@[local_ip]:[local_port]>
{extra}Max-Forwards: 70
{body}
]]></send>
"""


def caller_scenario() -> str:
    answer = '  <recv request="INVITE"/>\n{ok}  <recv request="ACK"/>\n'
    invite = _caller_request(
        "INVITE",
        1,
        "sip:bob@[remote_ip]:[remote_port]",
        _sdp("alice", 1, "sendrecv"),
        "Session-Expires: 90;refresher=uas\nSupported: timer\n",
    )
    refresh = _caller_request(
        "INVITE", 2, "[next_url]", _sdp("alice", 3, "sendrecv"), "Session-Expires: 90;refresher=uac\n"
    )
    hold_resume_move = "".join(
        answer.format(ok=_ok("alice", version, direction))
        for version, direction in ((4, "recvonly"), (5, "sendrecv"), (6, "sendrecv"))
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller: answers the callee's re-INVITEs, refreshes once itself">
{invite}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
{_caller_request("ACK", 1, "[next_url]")}  <nop><action><exec play_pcap_audio="{G711A_PCAP}"/></action></nop>
{answer.format(ok=_ok("alice", 2, "sendrecv"))}  <pause milliseconds="300"/>
{refresh}  <recv response="200"/>
{_caller_request("ACK", 2, "[next_url]")}{hold_resume_move}  <!-- audio again, to the new port -->
  <nop><action><exec play_pcap_audio="{G711A_PCAP}"/></action></nop>
  <recv request="BYE"/>
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
