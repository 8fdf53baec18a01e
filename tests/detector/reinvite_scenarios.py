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

from tests.detector.sipp_xml import NO_BODY, TRYING_RINGING, request, response, scenario, sdp

G711A_PCAP = "/usr/share/sip-tester/g711a.pcap"
#: The callee's second media port (SIPp's own media port is set with -mp).
MOVED_PORT = 6200
RE_INVITES = 5

_PLAY = f'  <nop><action><exec play_pcap_audio="{G711A_PCAP}"/></action></nop>\n'
_PAUSE = '  <pause milliseconds="{ms}"/>\n'


def _ok(user: str, version: int, direction: str, to_tag: str = "", port: str = "[media_port]") -> str:
    return response(
        "200 OK", to_tag=to_tag, contact=user, body=sdp(user, version=version, direction=direction, port=port)
    )


def _callee_request(method: str, cseq: int, body: str = NO_BODY, extra: str = "") -> str:
    return request(
        method,
        "[$contact]",
        cseq,
        sender="bob",
        tag="[pid]uas[call_number]",
        to="alice",
        to_tag=";tag=[$ftag]",
        before_max_forwards=extra,
        body=body,
        retrans=method != "ACK",
    )


def _callee_reinvite(
    cseq: int, version: int, direction: str, extra: str = "", port: str = "[media_port]"
) -> str:
    offer = sdp("bob", version=version, direction=direction, port=port) + "\n"
    return (
        _callee_request("INVITE", cseq, offer, extra)
        + '  <recv response="200"/>\n'
        + _callee_request("ACK", cseq)
    )


_FROM_TAG = r'<ereg regexp="tag=([^;&gt; ]+)" search_in="hdr" header="From:" assign_to="junk1,ftag"/>'
_CONTACT = (
    r'<ereg regexp="&lt;(sip:[^&gt;]+)&gt;" search_in="hdr" header="Contact:" assign_to="junk2,contact"/>'
)


#: The initial INVITE, keeping the caller's tag and Contact for the callee's own requests.
_RECV_INVITE_NOTING_PEER = (
    f'  <recv request="INVITE">\n    <action>\n      {_FROM_TAG}\n      {_CONTACT}\n    </action>\n'
    "  </recv>\n"
)


def callee_scenario() -> str:
    refresh = "Session-Expires: 90;refresher=uas\n"
    return scenario(
        "callee: refreshes from both sides, hold, resume and new ports from the callee",
        _RECV_INVITE_NOTING_PEER,
        response("180 Ringing", to_tag=";tag=[pid]uas[call_number]"),
        _ok("bob", 1, "sendrecv", ";tag=[pid]uas[call_number]"),
        '  <recv request="ACK"/>\n',
        _PLAY,
        _PAUSE.format(ms=1000),
        _callee_reinvite(1, 2, "sendrecv", refresh),
        '  <recv request="INVITE"/>\n',
        _ok("bob", 3, "sendrecv"),
        '  <recv request="ACK"/>\n',
        _PAUSE.format(ms=1000),
        _callee_reinvite(2, 4, "sendonly"),
        _PAUSE.format(ms=1500),
        _callee_reinvite(3, 5, "sendrecv"),
        _PAUSE.format(ms=1000),
        _callee_reinvite(4, 6, "sendrecv", refresh, port=str(MOVED_PORT)),
        _PAUSE.format(ms=3000),
        _callee_request("BYE", 5),
        '  <recv response="200"/>\n  <Reference variables="junk1,junk2"/>\n',
    )


def _caller_request(method: str, cseq: int, uri: str, body: str = NO_BODY, extra: str = "") -> str:
    return request(
        method,
        uri,
        cseq,
        sender="alice",
        tag="[pid]uac[call_number]",
        to="bob",
        to_tag="" if uri.startswith("sip:") else "[peer_tag_param]",
        before_max_forwards=extra,
        body=body,
        retrans=method != "ACK",
    )


def caller_scenario() -> str:
    answer = '  <recv request="INVITE"/>\n{ok}  <recv request="ACK"/>\n'
    invite = _caller_request(
        "INVITE",
        1,
        "sip:bob@[remote_ip]:[remote_port]",
        sdp("alice") + "\n",
        "Session-Expires: 90;refresher=uas\nSupported: timer\n",
    )
    refresh = _caller_request(
        "INVITE", 2, "[next_url]", sdp("alice", version=3) + "\n", "Session-Expires: 90;refresher=uac\n"
    )
    hold_resume_move = "".join(
        answer.format(ok=_ok("alice", version, direction))
        for version, direction in ((4, "recvonly"), (5, "sendrecv"), (6, "sendrecv"))
    )
    return scenario(
        "caller: answers the callee's re-INVITEs, refreshes once itself",
        invite,
        TRYING_RINGING,
        '  <recv response="200" rrs="true"/>\n',
        _caller_request("ACK", 1, "[next_url]"),
        _PLAY,
        answer.format(ok=_ok("alice", 2, "sendrecv")),
        _PAUSE.format(ms=300),
        refresh,
        '  <recv response="200"/>\n',
        _caller_request("ACK", 2, "[next_url]"),
        hold_resume_move,
        "  <!-- audio again, to the new port -->\n",
        _PLAY,
        '  <recv request="BYE"/>\n',
        response("200 OK"),
    )
