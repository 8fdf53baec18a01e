"""parse_sip against the public captures (cross-checked with tshark) and crafted edge cases."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from callqual.collector.errors import SipParseError
from callqual.collector.sip.message import (
    SIP_REASONS,
    SipMessage,
    canonical_header_name,
    looks_like_sip,
    parse_name_addr,
    parse_sip,
    parse_via,
    split_header_values,
)

from ._pcap import PCAPS, tshark_sip_fields, udp_payloads

CROSS_CHECKED = [
    PCAPS / "rtp-pcap" / "aaa.pcap",
    PCAPS / "rtp-pcap" / "SIP_DTMF2.pcap",
    PCAPS / "heplify" / "rtp_rtcp_sip_ipv4_udp.pcap",
    PCAPS / "heplify" / "sip_ipv6_udp.pcap",
    PCAPS / "heplify" / "ipip0.pcap",
    PCAPS / "rtp-pcap" / "sip-rtp-speex.pcap",
]


def _sip_datagrams(path: Path) -> dict[int, bytes]:
    return {frame: payload for frame, payload in udp_payloads(path) if looks_like_sip(payload)}


@pytest.mark.tshark
@pytest.mark.parametrize("path", CROSS_CHECKED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sip_datagram_parses_and_matches_tshark(path: Path) -> None:
    expected = tshark_sip_fields(path)
    datagrams = _sip_datagrams(path)
    assert datagrams, "capture holds SIP"
    assert set(datagrams) == set(expected)
    for frame, payload in datagrams.items():
        msg = parse_sip(payload)
        call_id, cseq, status, method = expected[frame]
        assert msg.call_id == call_id, frame
        assert msg.header("CSeq") == cseq, frame
        assert f"{msg.cseq_num} {msg.cseq_method}" == " ".join(cseq.split()), frame
        if msg.is_request:
            assert status == ""
            assert msg.method == method
        else:
            assert msg.status_code == int(status)
            assert method == ""
        assert msg.size == len(payload)


def test_aaa_register_fields() -> None:
    msg = parse_sip(_sip_datagrams(PCAPS / "rtp-pcap" / "aaa.pcap")[19])
    assert msg.is_request and msg.method == "REGISTER"
    assert msg.request_uri == "sip:sip.cybercity.dk"
    assert msg.first_line == "REGISTER sip:sip.cybercity.dk SIP/2.0"
    assert msg.from_uri == "sip:voi18063@sip.cybercity.dk"
    assert msg.from_tag == "903df0a"
    assert msg.to_tag is None
    assert msg.via_branch == "z9hG4bKnp151248737-46ea715e192.168.1.2"
    assert msg.vias[0].host == "192.168.1.2" and msg.vias[0].port is None
    assert msg.vias[0].params["rport"] is None
    assert msg.contact_uri == "sip:voi18063@192.168.1.2:5060;line=9c7d2dbd8822013c"
    assert msg.user_agent == "Nero SIPPS IP Phone Version 2.0.51.16"
    assert msg.max_forwards == 70
    assert msg.content_length == 0 and msg.body == b""
    assert [name for name, _ in msg.headers][:4] == ["Via", "From", "To", "Call-ID"]


def test_aaa_401_response() -> None:
    msg = parse_sip(_sip_datagrams(PCAPS / "rtp-pcap" / "aaa.pcap")[20])
    assert not msg.is_request
    assert (msg.status_code, msg.reason_phrase) == (401, "Unauthorized")
    assert msg.method is None and msg.request_uri is None
    assert msg.to_tag == "00-04092-1701af62-120c67172"
    # WWW-Authenticate has commas that are not list separators.
    assert len(msg.header_list("WWW-Authenticate")) == 1
    assert msg.vias[0].params["received"] == "80.230.219.70"
    assert msg.vias[0].params["rport"] == "5060"


def test_dtmf2_token_display_name_and_server() -> None:
    msg = parse_sip(_sip_datagrams(PCAPS / "rtp-pcap" / "SIP_DTMF2.pcap")[1])
    assert msg.from_display == "2503"
    assert msg.from_uri == "sip:2503@192.168.105.105"
    assert msg.contact_uri == "sip:2503@192.168.105.110:5060;transport=udp"
    assert msg.header_list("Allow") == ["INVITE", "ACK", "CANCEL", "BYE", "REFER", "OPTIONS", "INFO"]
    assert msg.user_agent == "SIP IP-DECT gateway, NEC Philips Unified Solutions"


def test_key_headers_for_evidence() -> None:
    msg = parse_sip(_sip_datagrams(PCAPS / "heplify" / "rtp_rtcp_sip_ipv4_udp.pcap")[1])
    keys = msg.key_headers()
    assert keys["Call-ID"] == "12013223@200.57.7.195"
    assert keys["CSeq"] == "1 INVITE"
    assert keys["Content-Type"] == "application/sdp"
    allowed = {"From", "To", "Call-ID", "CSeq", "Via", "User-Agent", "Contact", "Reason", "Content-Type"}
    assert set(keys) <= allowed
    assert keys["Via"] == msg.via[0]
    assert msg.body.startswith(b"v=0")
    assert len(msg.body) == msg.content_length


def test_junk_datagram_before_request_is_not_sip() -> None:
    """Zeek's trace: 4 NUL bytes, then a REGISTER without Call-ID in its own datagram."""
    datagrams = dict(udp_payloads(PCAPS / "zeek" / "sip-junk-before-request.pcap"))
    assert not looks_like_sip(datagrams[1])
    with pytest.raises(SipParseError) as junk:
        parse_sip(datagrams[1])
    assert junk.value.reason == "sip.bad_start_line"
    assert looks_like_sip(datagrams[2])
    with pytest.raises(SipParseError) as register:
        parse_sip(datagrams[2])
    assert register.value.reason == "sip.missing_call_id"
    # Junk glued in front of a start-line in the same datagram is not scanned past.
    glued = datagrams[1] + INVITE
    assert not looks_like_sip(glued)
    with pytest.raises(SipParseError, match=r"sip\.bad_start_line"):
        parse_sip(glued)


def test_invalid_content_length_capture() -> None:
    reasons = []
    for _frame, payload in udp_payloads(PCAPS / "zeek" / "invalid-content-length.pcap"):
        with pytest.raises(SipParseError) as err:
            parse_sip(payload, strict=True)
        reasons.append(err.value.reason)
        assert parse_sip(payload).anomalies == ["sip.bad_content_length"]
    assert reasons == ["sip.bad_content_length", "sip.bad_content_length"]


SDP = (
    b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
)

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;rport\r\n"
    b"Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK-0,"
    b" SIP / 2.0 / UDP [2001:db8::1]:5070;branch=z9hG4bK-a\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Doe, John \\"JD\\"" <sip:jd@example.com;transport=udp>;tag=abc\r\n'
    b"To: sip:bob@example.com;tag=xyz\r\n"
    b"Call-ID: 1234@10.0.0.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b'Contact: "A, B" <sip:a@10.0.0.1>;expires=60, <sip:b@10.0.0.2>\r\n'
    b"User-Agent: test\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)


def test_crafted_invite() -> None:
    msg = parse_sip(INVITE)
    assert msg.from_display == 'Doe, John "JD"'
    assert msg.from_uri == "sip:jd@example.com;transport=udp"
    assert msg.from_tag == "abc"
    assert msg.to_uri == "sip:bob@example.com" and msg.to_tag == "xyz"
    assert msg.to_display is None
    assert msg.via == [
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;rport",
        "SIP/2.0/TCP proxy.example.com;branch=z9hG4bK-0",
        "SIP / 2.0 / UDP [2001:db8::1]:5070;branch=z9hG4bK-a",
    ]
    assert [(v.transport, v.host, v.port, v.branch) for v in msg.vias] == [
        ("UDP", "10.0.0.1", 5060, "z9hG4bK-1"),
        ("TCP", "proxy.example.com", None, "z9hG4bK-0"),
        ("UDP", "[2001:db8::1]", 5070, "z9hG4bK-a"),
    ]
    assert msg.via_branch == "z9hG4bK-1"
    assert len(msg.header_all("Via")) == 2
    assert msg.header_list("Contact") == ['"A, B" <sip:a@10.0.0.1>;expires=60', "<sip:b@10.0.0.2>"]
    assert msg.contact_uri == "sip:a@10.0.0.1"
    assert msg.body == SDP
    assert msg.cseq_num == 7 and msg.cseq_method == "INVITE"


def test_compact_forms_and_case_insensitive_names() -> None:
    raw = (
        b"OPTIONS sip:x@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP h;branch=z9hG4bKc\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:x@example.com>\r\ni: cid-1\r\n"
        b"cSeQ: 1 OPTIONS\r\nm: <sip:a@h>\r\nk: timer\r\ns: hi\r\no: presence\r\n"
        b"x: 1800\r\nu: talk\r\nr: <sip:c@h>\r\nb: <sip:d@h>\r\ne: gzip\r\n"
        b"a: *;audio\r\nj: *;video\r\nd: proxy\r\ny: sig\r\nn: <https://h/c>\r\n"
        b"call-info: <http://h>\r\nX-custom-HEADER: 1\r\nc: text/plain\r\nl: 0\r\n\r\n"
    )
    msg = parse_sip(raw)
    names = [name for name, _ in msg.headers]
    assert names == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Supported",
        "Subject",
        "Event",
        "Session-Expires",
        "Allow-Events",
        "Refer-To",
        "Referred-By",
        "Content-Encoding",
        "Accept-Contact",
        "Reject-Contact",
        "Request-Disposition",
        "Identity",
        "Identity-Info",
        "Call-Info",
        "X-Custom-Header",
        "Content-Type",
        "Content-Length",
    ]
    assert msg.call_id == "cid-1"
    assert msg.header("i") == msg.header("CALL-ID") == "cid-1"
    assert msg.content_type == "text/plain"
    assert msg.content_length == 0
    assert canonical_header_name("www-authenticate") == "WWW-Authenticate"


def test_folded_lines_are_joined() -> None:
    raw = (
        b"BYE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"Subject: I know you're there,\r\n  pick up the phone\r\n\tand talk to me!\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:x@h>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n"
    )
    msg = parse_sip(raw)
    assert msg.header("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert ("Subject", "I know you're there, pick up the phone and talk to me!") in msg.headers


def test_leading_crlf_bare_lf_and_missing_final_blank_line() -> None:
    base = b"SIP/2.0 486 Busy Here\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=1\n"
    base += b"To: <sip:b@h>;tag=2\nCall-ID: c\nCSeq: 1 INVITE\nReason: Q.850;cause=17\n"
    msg = parse_sip(b"\r\n\r\n" + base)  # keep-alive CRLFs, then LF-only lines, no blank line
    assert msg.status_code == 486 and msg.reason_phrase == "Busy Here"
    assert msg.reason_header == "Q.850;cause=17"
    assert msg.body == b""
    assert msg.size == len(base) + 4
    with pytest.raises(SipParseError, match=r"sip\.no_header_end"):
        parse_sip(base.rstrip(b"\n"), strict=True)  # truncated mid-line


def test_content_length_rules() -> None:
    longer = INVITE + b"trailing garbage"
    assert parse_sip(longer).body == SDP  # RFC 3261 18.3: extra datagram bytes discarded
    with pytest.raises(SipParseError) as err:
        parse_sip(INVITE[:-10], strict=True)
    assert err.value.reason == "sip.content_length_mismatch"
    no_length = INVITE.replace(b"Content-Length: " + str(len(SDP)).encode() + b"\r\n", b"")
    msg = parse_sip(no_length)
    assert msg.content_length is None and msg.body == SDP
    twice = INVITE.replace(b"User-Agent: test\r\n", b"l: 3\r\n")
    with pytest.raises(SipParseError, match=r"sip\.bad_content_length"):
        parse_sip(twice, strict=True)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "sip.empty"),
        (b"\r\n\r\n", "sip.empty"),
        (b"HELLO\r\n\r\n", "sip.bad_start_line"),
        (b"INVITE sip:a@b SIP/3.0\r\n\r\n", "sip.bad_version"),
        (b"INVITE sip:a@b HTTP/1.1\r\n\r\n", "sip.bad_start_line"),
        (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", "sip.bad_start_line"),
        (b"INV(TE sip:a@b SIP/2.0\r\n\r\n", "sip.bad_start_line"),
        (b"SIP/2.1 200 OK\r\n\r\n", "sip.bad_version"),
        (b"SIP/2.0 20 OK\r\n\r\n", "sip.bad_status_code"),
        (b"SIP/2.0 700 Huh\r\n\r\n", "sip.bad_status_code"),
        (b"SIP/2.0 2x0 OK\r\n\r\n", "sip.bad_status_code"),
        (b"SIP/2.0 200 OK\r\nCall-ID: \xff\xfe\r\n\r\n", "sip.not_utf8"),
        (b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n", "sip.bad_header"),
        (b"SIP/2.0 200 OK\r\n folded first\r\n\r\n", "sip.bad_header"),
        (b"SIP/2.0 200 OK\r\nBad Name: x\r\n\r\n", "sip.bad_header"),
        (b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n", "sip.missing_call_id"),
        (b"SIP/2.0 200 OK\r\nCall-ID: a\r\n\r\n", "sip.missing_cseq"),
        (b"SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: x INVITE\r\n\r\n", "sip.bad_cseq"),
        (b"SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: 1\r\n\r\n", "sip.bad_cseq"),
        (b"SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: 99999999999 INVITE\r\n\r\n", "sip.bad_cseq"),
        (b"SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\nTo: <sip:b@h>\r\n\r\n", "sip.missing_from"),
        (b"SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: 1 A\r\nFrom: <sip:a@h>\r\n\r\n", "sip.missing_to"),
        (b'SIP/2.0 200 OK\r\ni: a\r\nCSeq: 1 A\r\nf: "open <sip:a@h>\r\nt: b@h\r\n\r\n', "sip.bad_from"),
        (b"SIP/2.0 200 OK\r\ni: a\r\nCSeq: 1 A\r\nf: <sip:a@h>\r\nt: <sip:b@h\r\n\r\n", "sip.bad_to"),
        (b"SIP/2.0 200 OK\r\ni: a\r\nCSeq: 1 A\r\nf:a@h\r\nt:b@h\r\nl: -1\r\n\r\n", "sip.bad_content_length"),
    ],
)
def test_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_sip(raw, strict=True)
    assert err.value.reason == reason
    assert reason in SIP_REASONS


@pytest.mark.parametrize(
    ("raw", "anomaly"),
    [
        (
            b'SIP/2.0 200 OK\r\nf: "J\xfcrgen" <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: a\r\nCSeq: 1 A\r\n\r\n',
            "sip.not_utf8",
        ),
        (
            b"SIP/2.0 200 OK\r\nno colon here\r\nf: <sip:a@h>\r\nt: <sip:b@h>\r\ni: a\r\nCSeq: 1 A\r\n\r\n",
            "sip.bad_header",
        ),
        (
            b"SIP/2.0 200 OK\r\nf: <sip:a@h>\r\nt: <sip:b@h>\r\ni: a\r\nCSeq: 1 A\r\nl: bad\r\n\r\nbody",
            "sip.bad_content_length",
        ),
        (
            b"SIP/2.0 200 OK\r\nf: <sip:a@h>\r\nt: <sip:b@h>\r\ni: a\r\nCSeq: 1 A\r\nl: 99\r\n\r\nbody",
            "sip.content_length_mismatch",
        ),
        (b"SIP/2.0 200 OK\r\nf: <sip:a@h>\r\nt: <sip:b@h>\r\ni: a\r\nCSeq: 1 A", "sip.no_header_end"),
    ],
)
def test_tolerated_anomalies_are_recorded(raw: bytes, anomaly: str) -> None:
    """The default mode keeps a usable message and names what it tolerated."""
    msg = parse_sip(raw)
    assert msg.call_id == "a" and msg.cseq_num == 1
    assert anomaly in msg.anomalies
    with pytest.raises(SipParseError) as err:
        parse_sip(raw, strict=True)
    assert err.value.reason == anomaly


def test_huge_header_section_is_refused_quickly() -> None:
    huge = b"INVITE sip:a@b SIP/2.0\r\nX-Pad: " + b"A" * (1 << 20) + b"\r\n\r\n"
    t0 = time.perf_counter()
    with pytest.raises(SipParseError) as err:
        parse_sip(huge)
    assert err.value.reason == "sip.header_too_long"
    assert time.perf_counter() - t0 < 0.5
    assert looks_like_sip(huge)
    # One byte under the limit parses far enough to reach the header checks.
    pad = 64 * 1024 - 1024
    fits = INVITE.replace(b"User-Agent: test", b"User-Agent: " + b"u" * pad)
    assert parse_sip(fits).user_agent == "u" * pad
    with pytest.raises(SipParseError, match=r"sip\.header_too_long"):
        parse_sip(fits, max_header_bytes=1024)


def test_too_many_headers() -> None:
    many = INVITE.replace(b"User-Agent: test\r\n", b"X-A: 1\r\n" * 300)
    with pytest.raises(SipParseError) as err:
        parse_sip(many)
    assert err.value.reason == "sip.too_many_headers"
    assert len(parse_sip(many, max_headers=400).header_all("x-a")) == 300


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"INVITE sip:a@b SIP/2.0\r\n", True),
        (b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n", True),
        (b"SIP/2.0 180 Ringing\r\n", True),
        (b"SIP/2.0 200", True),
        (b"sip/2.0 200 OK\r\n", True),
        (b"\r\n\r\n", False),
        (b"SIP/2.0 999 Bad\r\n", False),
        (b"HTTP/1.1 200 OK\r\n", False),
        (b"GET / HTTP/1.1\r\n", False),
        (b"\x80\x00\x12\x34" + b"\x00" * 160, False),
        (b"INVITE sip:a@b SIP/2.0x\r\n", False),
    ],
)
def test_looks_like_sip(data: bytes, expected: bool) -> None:
    assert looks_like_sip(data) is expected


def test_name_addr_forms() -> None:
    assert parse_name_addr('"A \\"q\\", B" <sip:a@h;lr>;tag=1;x="semi;colon"') == (
        'A "q", B',
        "sip:a@h;lr",
        {"tag": "1", "x": "semi;colon"},
    )
    assert parse_name_addr("Bob Smith <sips:bob@h:5061>") == ("Bob Smith", "sips:bob@h:5061", {})
    assert parse_name_addr("sip:bob@h;tag=9;maddr=1.2.3.4") == (
        None,
        "sip:bob@h",
        {"tag": "9", "maddr": "1.2.3.4"},
    )
    assert parse_name_addr("<tel:+15551234567>;TAG=x").params == {"tag": "x"}
    for bad in ['"unterminated <sip:a@h>', "<sip:a@h", '"x" sip:a@h', ""]:
        with pytest.raises(ValueError):
            parse_name_addr(bad)


def test_split_and_via_helpers() -> None:
    parts = split_header_values('<sip:a@h;x=",">, "q,\\"" <sip:b@h> ,,')
    assert parts == ['<sip:a@h;x=",">', '"q,\\"" <sip:b@h>']
    via = parse_via("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK;received=1.2.3.4")
    params = {"branch": "z9hG4bK", "received": "1.2.3.4"}
    assert via == ("SIP/2.0", "WSS", "df7jal23ls0d.invalid", None, params)
    for bad in ["SIP/2.0 host", "SIP/2.0/UDP", "SIP/2.0/UDP h:99999", "SIP/2.0/UDP [::1"]:
        with pytest.raises(ValueError):
            parse_via(bad)


def test_message_is_slotted() -> None:
    msg = parse_sip(INVITE)
    assert isinstance(msg, SipMessage)
    assert not hasattr(msg, "__dict__")
