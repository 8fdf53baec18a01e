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
from tests.detector.sipp_xml import TRYING_RINGING, request, response, scenario, sdp
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


_CALLER = {"sender": "alice", "tag": "[pid]uac[call_number]", "to": "bob"}
#: The caller's requests inside the dialog: to the callee's Contact, with its tag.
_IN_DIALOG = {**_CALLER, "to_tag": "[peer_tag_param]"}
_PAUSE = '  <pause milliseconds="{ms}"/>\n'
_HOLD_OFFER = sdp("alice", direction="sendonly", version=2)


def _invite() -> str:
    return request("INVITE", "sip:bob@[remote_ip]:[remote_port]", 1, **_CALLER, body=sdp("alice"))


def _hold(talk_ms: int, hold_after_ms: int | None) -> str:
    """Talk, or talk then put the callee on hold (re-INVITE ``sendonly``, RFC 3264 8.4), talk on."""
    if hold_after_ms is None:
        return _PAUSE.format(ms=talk_ms)
    return "".join(
        (
            _PAUSE.format(ms=hold_after_ms),
            request("INVITE", "[next_url]", 2, **_IN_DIALOG, body=_HOLD_OFFER),
            '  <recv response="200"/>\n',
            request("ACK", "[next_url]", 2, **_IN_DIALOG, contact=None, retrans=False),
            _PAUSE.format(ms=talk_ms - hold_after_ms),
        )
    )


def caller_scenario(audio: Path | None, talk_ms: int, hold_after_ms: int | None = None) -> str:
    """INVITE, ACK the 200, start playing ``audio`` (if any), hang up ``talk_ms`` later.

    With ``hold_after_ms`` the caller puts the callee on hold that long after the ACK (and goes
    on sending: music on hold).
    """
    return scenario(
        f"caller: talks {talk_ms} ms, then hangs up",
        _invite(),
        TRYING_RINGING,
        '  <recv response="200" rrs="true"/>\n',
        request("ACK", "[next_url]", 1, **_IN_DIALOG, contact=None, retrans=False),
        _play(audio),
        _hold(talk_ms, hold_after_ms),
        request("BYE", "[next_url]", 2 if hold_after_ms is None else 3, **_IN_DIALOG, contact=None),
        '  <recv response="200"/>\n',
    )


def callee_scenario(audio: Path | None, *, comfort_noise: bool = False, held: bool = False) -> str:
    """Ring, answer with SDP, start playing ``audio`` (if any), then wait for the caller's BYE.

    ``comfort_noise`` offers CN in the answer; ``held`` answers the caller's hold re-INVITE
    ``recvonly`` first.
    """
    tag = ";tag=[pid]uas[call_number]"
    return scenario(
        f"callee: answers, plays {audio}",
        '  <recv request="INVITE"/>\n',
        response("180 Ringing", to_tag=tag),
        response("200 OK", to_tag=tag, contact="bob", body=sdp("bob", comfort_noise=comfort_noise)),
        '  <recv request="ACK"/>\n',
        _play(audio),
        _HELD if held else "",
        '  <recv request="BYE"/>\n',
        response("200 OK"),
    )


#: The held callee's answer to the hold re-INVITE: it stops sending (RFC 3264 8.4).
_HELD = (
    '  <recv request="INVITE"/>\n'
    + response("200 OK", contact="bob", body=sdp("bob", direction="recvonly", version=2))
    + '  <recv request="ACK"/>\n'
)


def refused_callee_scenario(status: str) -> str:
    """Ring, then refuse with ``status`` (e.g. "503 Service Unavailable"): sip_lab's busy UA, re-coded."""
    return BUSY_SCENARIO.replace("486 Busy Here", status)


#: An INVITE refused with STATUS, ACKed on the INVITE's branch.
REFUSED_CALLER_SCENARIO = scenario(
    "caller: refused",
    _invite(),
    TRYING_RINGING,
    '  <recv response="STATUS"/>\n',
    request(
        "ACK",
        "sip:bob@[remote_ip]:[remote_port]",
        1,
        **_IN_DIALOG,
        contact=None,
        retrans=False,
        branch="[branch-1]",
    ),
)
