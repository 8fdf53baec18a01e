"""The compiled parser's own guarantees: a panic is an error, not a dead process; the header
grammar is total on any text; the pre-read event fields agree with the public accessors."""

from __future__ import annotations

import callqual_native
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callqual.collector.errors import SdpParseError, SipParseError
from callqual.collector.sip.message import (
    MAX_HEADERS,
    SIP_REASONS,
    parse_name_addr,
    parse_params,
    parse_sip,
    parse_via,
    split_header_values,
)
from callqual.collector.sip.sdp import parse_sdp

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text as it reaches the grammar: anything the packet decode can produce (no lone surrogates),
# weighted towards the characters the grammar cares about and Unicode whitespace.
_GRAMMAR_CHARS = st.sampled_from([*' \t;,"<>:=\\/[]@*', "\u3000", "\x85", "\x1c", "\u00e9", "Σ"])
_TEXT = st.lists(st.one_of(_GRAMMAR_CHARS, st.characters(exclude_categories=("Cs",))), max_size=80).map(
    "".join
)


def test_a_panic_in_the_compiled_code_is_a_counted_reason() -> None:
    with pytest.raises(callqual_native.ParseError) as caught:
        callqual_native._panic_inside_guard()
    assert caught.value.args[0] == "sip.parser_fault"
    assert "sip.parser_fault" in SIP_REASONS
    # and the process goes on parsing
    assert parse_sip(_message(["Via: SIP/2.0/UDP h;branch=z9hG4bK1"])).via_branch == "z9hG4bK1"


@FUZZ
@given(_TEXT)
def test_header_grammar_is_total(text: str) -> None:
    """Only ValueError may come out, and what does come out is well formed."""
    for value in split_header_values(text):
        assert value and value == value.strip()
    for parse in (parse_name_addr, parse_via, parse_params):
        try:
            result = parse(text)
        except ValueError:
            continue
        assert result is not None
    try:
        params = parse_params(text)
    except ValueError:
        return
    assert all(name == name.strip() and name for name in params)


def _message(headers: list[str], start: str = "INVITE sip:bob@b.example SIP/2.0") -> bytes:
    base = ["Call-ID: c1", "CSeq: 1 INVITE", "From: <sip:a@a.example>;tag=f", "To: <sip:bob@b.example>"]
    return ("\r\n".join([start, *base, *headers]) + "\r\n\r\n").encode()


_HEADER = st.one_of(
    st.sampled_from(
        [
            "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-a",
            "v: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK-b;rport",
            'Via: SIP / 2.0 / UDP host ;received=1.2.3.4 ;branch="q;x"',
            "Via: bogus",
            'Contact: "A, B" <sip:a@h;transport=tcp>;expires=60, <sip:c@d>',
            "m: *",
            "Contact: <sip:x",
            "User-Agent: friendly-scanner",
            "Server: Asterisk",
            "Max-Forwards: 70",
            " folded continuation",
        ]
    ),
    _TEXT.map(lambda text: f"X-Fuzz: {text}"),
    _TEXT.map(lambda text: f"Via: {text}"),
    _TEXT.map(lambda text: f"Contact: {text}"),
)


@FUZZ
@given(st.lists(_HEADER, max_size=12))
def test_pre_read_event_fields_agree_with_the_accessors(headers: list[str]) -> None:
    """via_branch and contact_uri are read by the parser; the list accessors must say the same."""
    try:
        msg = parse_sip(_message([line.replace("\r", "").replace("\n", "") for line in headers]))
    except SipParseError as exc:
        assert exc.reason in SIP_REASONS
        return
    tops = [v for v in (msg.header_all("Via") or []) if split_header_values(v)]
    expected_branch = None
    if tops:
        try:
            expected_branch = parse_via(split_header_values(tops[0])[0]).branch
        except ValueError:
            expected_branch = None
    assert msg.via_branch == expected_branch
    contacts = msg.header_list("Contact")
    if not contacts:
        assert msg.contact_uri is None
    elif contacts[0] == "*":
        assert msg.contact_uri == "*"
    else:
        try:
            assert msg.contact_uri == parse_name_addr(contacts[0]).uri
        except ValueError:
            assert msg.contact_uri is None
    # headers and the index hold the same values, in wire order
    for name, value in msg.headers:
        assert value in msg.header_all(name)


def test_header_count_and_size_are_bounded() -> None:
    many = [f"X-H{i}: {i}" for i in range(MAX_HEADERS)]
    with pytest.raises(SipParseError) as caught:
        parse_sip(_message(many))
    assert caught.value.reason == "sip.too_many_headers"
    huge = _message(["X-Big: " + "a" * 70_000])
    with pytest.raises(SipParseError) as caught:
        parse_sip(huge)
    assert caught.value.reason == "sip.header_too_long"


def test_stray_bytes_become_escapes_and_the_body_stays_bytes() -> None:
    data = _message(["Subject: SUBJ"]).replace(b"SUBJ", b"caf\xe9 \xc3\xa9")
    data = data.replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\n\xff\x00a")
    msg = parse_sip(data)
    assert msg.header("Subject") == "caf\\xe9 \u00e9"
    assert msg.anomalies == ["sip.not_utf8"]
    assert msg.body == b"\xff\x00a"
    with pytest.raises(SipParseError) as caught:
        parse_sip(data, strict=True)
    assert caught.value.reason == "sip.not_utf8"


def test_sdp_anomalies_before_an_error_are_still_counted() -> None:
    anomalies: list[str] = []
    with pytest.raises(SdpParseError) as caught:
        parse_sdp(b"v=0\r\nnot a line\r\nm=audio 99999 RTP/AVP 0\r\n", anomalies)
    assert caught.value.reason == "sdp.bad_media"
    assert anomalies == ["sdp.bad_line"]


def test_sdp_connection_addresses_are_spelt_as_the_decoder_spells_them() -> None:
    body = (
        b"v=0\r\nc=IN IP6 2001:DB8:0:0::1\r\nm=audio 4000 RTP/AVP 0\r\n"
        b"m=audio 4002 RTP/AVP 8\r\nc=IN IP4 Media.Example.COM\r\n"
    )
    first, second = parse_sdp(body)
    assert first.connection_ip == "2001:db8::1"
    assert second.connection_ip == "media.example.com"
    with pytest.raises(SdpParseError) as caught:
        parse_sdp(b"v=0\r\nc=IN IP6 2001:db8::zz\r\n")
    assert caught.value.reason == "sdp.bad_connection"
