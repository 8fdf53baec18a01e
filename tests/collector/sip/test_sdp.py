"""parse_sdp and sdp_body on the public captures and on crafted bodies."""

from __future__ import annotations

import pytest

from callqual.collector.errors import SdpParseError, SipParseError
from callqual.collector.sip.message import looks_like_sip, parse_sip
from callqual.collector.sip.sdp import SDP_REASONS, parse_sdp, sdp_body
from callqual.schemas import SdpMedia

from ._pcap import PCAPS, udp_payloads


def _message(pcap: str, frame: int) -> bytes:
    return dict(udp_payloads(PCAPS / pcap))[frame]


def test_heplify_invite_offer() -> None:
    msg = parse_sip(_message("heplify/rtp_rtcp_sip_ipv4_udp.pcap", 1))
    body = sdp_body(msg)
    assert body is not None
    assert parse_sdp(body) == [
        SdpMedia(
            media="audio",
            connection_ip="200.57.7.196",
            port=40376,
            proto="RTP/AVP",
            payload_types=[8, 18, 4, 0],
            rtpmap={8: "PCMA/8000", 18: "G729/8000", 4: "G723/8000", 0: "PCMU/8000"},
            direction="sendrecv",
        )
    ]


def test_dtmf2_telephone_event() -> None:
    msg = parse_sip(_message("rtp-pcap/SIP_DTMF2.pcap", 20))
    body = sdp_body(msg)
    assert body is not None
    (audio,) = parse_sdp(body)
    assert audio.connection_ip == "192.168.105.110"
    assert audio.port == 4376
    assert audio.rtpmap[96] == "telephone-event/8000"


def test_ipv6_capture() -> None:
    sdps = []
    for _frame, payload in udp_payloads(PCAPS / "heplify" / "sip_ipv6_udp.pcap"):
        if looks_like_sip(payload):
            body = sdp_body(parse_sip(payload))
            if body is not None:
                sdps.append(parse_sdp(body))
    assert sdps == [
        [SdpMedia(media="audio", connection_ip="fe80::21a:a0ff:fe07:32e0", port=5008, proto="RTP/AVP",
                  payload_types=[0], rtpmap={0: "pcmu/8000/1"})]
    ]  # fmt: skip


def test_every_sdp_in_clean_captures_parses() -> None:
    count = 0
    for pcap in ["rtp-pcap/aaa.pcap", "rtp-pcap/SIP_DTMF2.pcap", "rtp-pcap/sip-rtp-g726.pcap"]:
        for _frame, payload in udp_payloads(PCAPS / pcap):
            if looks_like_sip(payload):
                body = sdp_body(parse_sip(payload))
                if body is not None:
                    media = parse_sdp(body)
                    assert media and all(m.payload_types for m in media)
                    count += 1
    assert count == 12 + 4 + 16


def test_sql_injection_in_connection_line_is_garbage() -> None:
    """heplify's ipip0 trace carries a scanner's INVITE with SQL in c=."""
    bodies = []
    for _frame, payload in udp_payloads(PCAPS / "heplify" / "ipip0.pcap"):
        body = sdp_body(parse_sip(payload))
        if body is not None:
            bodies.append(body)
    assert len(bodies) == 1
    with pytest.raises(SdpParseError) as err:
        parse_sdp(bodies[0])
    assert err.value.reason == "sdp.bad_connection"
    assert isinstance(err.value, SipParseError)


def test_session_and_media_level_rules() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 224.2.1.1/127/3\r\nt=0 0\r\na=sendonly\r\n"
        b"m=audio 49170/2 RTP/AVP 0 8\r\na=rtpmap:8 PCMA/8000\r\n"
        b"m=video 51372 RTP/AVP 99\r\nc=IN IP6 2001:DB8:0:0::1\r\n"
        b"a=rtpmap:99 h263-1998/90000\r\na=recvonly\r\n"
        b"m=audio 0 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\na=inactive\r\n"
        b"m=image 4002 udptl t38\r\nc=IN IP4 gw.Example.com\r\n"
        b"m=audio 5000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n\r\n"
    )
    media = parse_sdp(body)
    assert [(m.media, m.connection_ip, m.port, m.payload_types, m.direction) for m in media] == [
        ("audio", "224.2.1.1", 49170, [0, 8], "sendonly"),
        ("video", "2001:db8::1", 51372, [99], "recvonly"),
        ("audio", "0.0.0.0", 0, [0], "inactive"),
        ("image", "gw.example.com", 4002, [], "sendonly"),
        ("audio", "224.2.1.1", 5000, [111], "sendonly"),
    ]
    assert media[0].rtpmap == {8: "PCMA/8000"}
    assert media[4].rtpmap == {111: "opus/48000/2"}


def test_lf_only_and_no_connection() -> None:
    media = parse_sdp(b"v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 7078 RTP/AVP 0\n")
    assert media[0].connection_ip is None and media[0].direction == "sendrecv"
    assert parse_sdp(b"v=0\r\ns=-\r\n") == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "sdp.empty"),
        (b"\r\n\r\n", "sdp.empty"),
        (b"o=- 1 1 IN IP4 h\r\n", "sdp.no_version"),
        (b"v=1\r\n", "sdp.bad_version"),
        (b"v=0\r\nthis is not sdp\r\n", "sdp.bad_line"),
        (b"v=0\r\nM=audio 1 RTP/AVP 0\r\n", "sdp.bad_line"),
        (b"v=0\r\nm=audio\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio -1 RTP/AVP 0\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio 1/0 RTP/AVP 0\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio 1 RTP/AVP 128\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio 1 RTP/AVP pcmu\r\n", "sdp.bad_media"),
        (b"v=0\r\nc=IN IP4\r\n", "sdp.bad_connection"),
        (b"v=0\r\nc=IN IP5 1.2.3.4\r\n", "sdp.bad_connection"),
        (b"v=0\r\nc=IN IP4 1.2.3.4/x\r\n", "sdp.bad_connection"),
        (b"v=0\r\nc=IN IP4 1.2.3.4.5.6\r\n", "sdp.bad_connection"),
        (b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", "sdp.bad_rtpmap"),
        (b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n", "sdp.bad_rtpmap"),
        (b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/8k\r\n", "sdp.bad_rtpmap"),
        (b"v=0\r\n" + b"m=audio 1 RTP/AVP 0\r\n" * 65, "sdp.too_many_media"),
    ],
)
def test_sdp_reasons(body: bytes, reason: str) -> None:
    with pytest.raises(SdpParseError) as err:
        parse_sdp(body)
    assert err.value.reason == reason
    assert reason in SDP_REASONS


SDP = b"v=0\r\no=- 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 9000 RTP/AVP 8\r\n"


def _invite(content_type: bytes, body: bytes) -> bytes:
    return (
        b"INVITE sip:+4930123@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK9\r\n"
        b"From: <sip:a@gw>;tag=1\r\nTo: <sip:+4930123@gw>\r\nCall-ID: mp-1\r\nCSeq: 1 INVITE\r\n"
        b"Content-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def test_sip_i_multipart_mixed() -> None:
    body = (
        b"--unique-boundary-1\r\nContent-Type: application/SDP\r\n\r\n" + SDP + b"\r\n"
        b"--unique-boundary-1\r\nContent-Type: application/ISUP;version=itu-t92+\r\n"
        b"Content-Disposition: signal;handling=optional\r\n\r\n\x01\x00\x49\x00\x00\x03\x02\x00\x07\r\n"
        b"--unique-boundary-1--\r\n"
    )
    msg = parse_sip(_invite(b'multipart/mixed;boundary="unique-boundary-1"', body))
    assert sdp_body(msg) == SDP
    assert parse_sdp(SDP)[0].port == 9000


def test_multipart_alternative_nested_and_isup_first() -> None:
    inner = (
        b"--in\r\nContent-Type: text/plain\r\n\r\nhello\r\n--in\r\nContent-Type: application/sdp\r\n\r\n"
        + SDP
    )
    inner += b"\r\n--in--"
    body = (
        b"preamble\r\n--out\r\nContent-Type: application/isup\r\n\r\n\x01\x02\r\n"
        b"--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n" + inner + b"\r\n--out--\r\n"
    )
    msg = parse_sip(_invite(b"Multipart/Mixed; boundary=out", body))
    assert sdp_body(msg) == SDP


def test_sdp_body_absent_cases() -> None:
    assert sdp_body(parse_sip(_invite(b"application/sdp", b""))) is None
    assert sdp_body(parse_sip(_invite(b"application/isup", b"\x01\x02"))) is None
    no_sdp = b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"
    assert sdp_body(parse_sip(_invite(b"multipart/mixed;boundary=b", no_sdp))) is None
    plain = parse_sip(_invite(b"application/sdp; charset=utf-8", SDP))
    assert sdp_body(plain) == SDP


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (b"multipart/mixed", b"--b\r\n\r\nx"),
        (b"multipart/mixed;boundary=b", b"no delimiter here"),
        (b"multipart/mixed;boundary=b", b"--b\r\nContent-Type: application/sdp"),
        (b"multipart/mixed;boundary=b", b"--b--\r\n"),
    ],
)
def test_bad_multipart(content_type: bytes, body: bytes) -> None:
    with pytest.raises(SdpParseError) as err:
        sdp_body(parse_sip(_invite(content_type, body)))
    assert err.value.reason == "sdp.bad_multipart"
