"""MGCP commands and responses give up their SDP and call id; anything else is not MGCP."""

from callqual.collector.mgcp import parse_mgcp

CRCX = (
    b"CRCX 10511 aaln/1@cpg2 MGCP 1.0 NCS 1.0\r\nC: ABCD000068\r\nL: p:20, a:PCMA\r\nM: sendrecv\r\n\r\n"
    b"v=0\r\nc=IN IP4 200.57.7.196\r\nm=audio 40362 RTP/AVP 0\r\n"
)


def test_command_with_sdp() -> None:
    msg = parse_mgcp(CRCX)
    assert msg is not None
    assert (msg.is_command, msg.verb_or_code, msg.transaction_id, msg.call_id) == (
        True,
        "CRCX",
        "10511",
        "ABCD000068",
    )
    assert msg.sdp is not None and msg.sdp.startswith(b"v=0")


def test_response_with_sdp_has_no_call_id() -> None:
    msg = parse_mgcp(b"200 10511 OK\nI: 1\n\nv=0\nc=IN IP4 200.57.7.202\nm=audio 30000 RTP/AVP 8\n")
    assert msg is not None
    assert (msg.is_command, msg.verb_or_code, msg.transaction_id, msg.call_id) == (
        False,
        "200",
        "10511",
        None,
    )
    assert msg.sdp is not None


def test_not_mgcp() -> None:
    for data in (
        b"",
        b"INVITE sip:a@b SIP/2.0\r\n",
        b"CRCX abc x MGCP 1.0\r\n",
        b"CRCX 1 ep SIP/2.0",
        b"\x80\x08abc",
    ):
        assert parse_mgcp(data) is None


def test_a_call_id_that_is_not_ascii_is_escaped_packet_text() -> None:
    msg = parse_mgcp(CRCX.replace(b"ABCD000068", b"ABCD\xff\xfe68"))
    assert msg is not None and msg.call_id == "ABCD\\xff\\xfe68"
