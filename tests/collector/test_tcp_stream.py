"""SIP over TCP and WebSocket: stream reassembly and framing, on crafted connections."""

from __future__ import annotations

import os
import struct
import zlib

from callqual.collector.decode.frame_decoder import FrameDecoder
from callqual.collector.decode.websocket import unmask
from callqual.collector.packet import Payload
from tests.collector.pcapcraft import ether, frame, ipv4, tcp

SYN, FIN, RST, PSH_ACK = 0x02, 0x01, 0x04, 0x18
CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 5060)


def sip(method: str = "INVITE", body: bytes = b"", extra: str = "", compact: bool = False) -> bytes:
    length = "l" if compact else "Content-Length"
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n{extra}"
        f"{length}: {len(body)}\r\n\r\n"
    ).encode() + body


class Conn:
    """A client->server TCP connection fed through one decoder, one segment per frame."""

    def __init__(self, dec: FrameDecoder, isn: int = 1000, syn: bool = True, server: bool = False) -> None:
        self.dec = dec
        self.src, self.dst = (SERVER, CLIENT) if server else (CLIENT, SERVER)
        self.seq = isn
        self.number = 0
        if syn:
            self.send(b"", SYN)
            self.seq += 1

    def segment(self, seq: int, data: bytes, flags: int = PSH_ACK) -> list[Payload]:
        self.number += 1
        pkt = ipv4(self.src[0], self.dst[0], 6, tcp(self.src[1], self.dst[1], seq & 0xFFFFFFFF, flags, data))
        return self.dec.decode(frame(ether(pkt), number=self.number))

    def send(self, data: bytes, flags: int = PSH_ACK) -> list[Payload]:
        out = self.segment(self.seq, data, flags)
        self.seq += len(data)
        return out

    def send_all(self, data: bytes, mss: int = 1448) -> list[Payload]:
        out: list[Payload] = []
        for i in range(0, len(data), mss):
            out += self.send(data[i : i + mss])
        return out


def test_one_message_per_segment() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    (p,) = c.send(sip(body=b"v=0\r\n"))
    assert p.transport == "tcp"
    assert p.data == sip(body=b"v=0\r\n")
    assert (p.src_ip, p.src_port, p.dst_ip, p.dst_port) == (*CLIENT, *SERVER)
    assert p.frame == 2


def test_several_messages_in_one_segment_and_keepalives() -> None:
    c = Conn(FrameDecoder())
    msgs = [sip("INVITE", b"v=0\r\n"), sip("ACK"), sip("BYE", compact=True)]
    out = c.send(b"\r\n\r\n" + msgs[0] + b"\r\n\r\n" + msgs[1] + msgs[2])
    assert [p.data for p in out] == msgs


def test_one_message_over_many_segments_completes_on_the_last() -> None:
    c = Conn(FrameDecoder())
    msg = sip(body=b"a=x\r\n" * 1000)
    out = c.send_all(msg, mss=100)
    assert [p.data for p in out] == [msg]
    assert out[0].frame == c.number


def test_capture_starting_mid_connection() -> None:
    c = Conn(FrameDecoder(), syn=False, isn=4_000_000_000)
    # first a tail of some earlier message: not a SIP start, so not followed
    assert c.send(b"a=rtpmap:0 PCMU/8000\r\n") == []
    msg = sip(body=b"v=0\r\n" * 300)
    assert [p.data for p in c.send_all(msg, mss=500)] == [msg]  # crosses the 2^32 sequence wrap
    assert c.dec.skipped["tcp.not_sip"] == 1


def test_retransmissions_and_overlaps_are_trimmed() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    msg = sip(body=b"x" * 300)
    start = c.seq
    assert c.segment(start, msg[:200]) == []
    assert c.segment(start, msg[:200]) == []  # exact retransmission
    out = c.segment(start + 100, msg[100:])  # overlaps the first 100 bytes already seen
    assert [p.data for p in out] == [msg]
    assert c.segment(start + 100, msg[100:]) == []  # late retransmission of data already framed
    assert dec.skipped["tcp.retransmission"] == 2
    assert not dec.errors


def test_out_of_order_segments_within_the_window() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    msgs = sip("INVITE", b"v=0\r\n" * 50) + sip("ACK")
    s = c.seq
    parts = [(s + i, msgs[i : i + 120]) for i in range(0, len(msgs), 120)]
    order = [3, 1, 2, 0, *range(4, len(parts))]
    out: list[Payload] = []
    for k in order:
        out += c.segment(*parts[k])
    assert b"".join(p.data for p in out) == msgs
    assert len(out) == 2


def test_a_lost_segment_costs_only_the_message_it_was_in() -> None:
    dec = FrameDecoder(max_tcp_buffer=4096)
    c = Conn(dec)
    first, second = sip("INVITE", b"v=0\r\n" * 100), sip("BYE")
    s = c.seq
    c.segment(s, first[:100])
    # first[100:200] is never captured; more data keeps arriving until the window gives up
    pos = 200
    while pos < len(first):
        c.segment(s + pos, first[pos : pos + 100])
        pos += 100
    out = c.segment(s + len(first), second)
    for i in range(10):  # filler traffic after the hole pushes the window over its bound
        out += c.segment(s + len(first) + len(second) + i * 1000, b"\r\n" * 500)
    assert [p.data for p in out] == [second]
    assert dec.dropped["tcp.out_of_order_overflow"] >= 1


def test_large_header_is_framed() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    msg = sip(extra="X-Big: " + "a" * 64 * 1024 + "\r\n", body=b"v=0\r\n")
    assert len(msg) > 64 * 1024
    out = c.send_all(msg)
    assert [p.data for p in out] == [msg]


def test_megabyte_header_is_dropped_not_buffered_and_the_stream_recovers() -> None:
    dec = FrameDecoder(max_tcp_buffer=256 * 1024)
    c = Conn(dec)
    huge = b"INVITE sip:bob@example.com SIP/2.0\r\n" + b"X-Junk: " + b"b" * (1 << 20)  # no end of headers
    out = c.send_all(huge)
    assert out == []
    assert dec.dropped["tcp.sip_header_too_long"] == 1
    # the memory held for the stream stays bounded all along
    (st,) = dec._tcp._streams.values()
    assert st.framer is not None and st.framer.buffered <= 256 * 1024
    # the header finally ends, and the next message is framed again
    nxt = sip("BYE")
    out = c.send(b"\r\n\r\n" + nxt)
    assert [p.data for p in out] == [nxt]


def test_message_bigger_than_the_buffer_is_skipped_in_sync() -> None:
    dec = FrameDecoder(max_tcp_buffer=8192)
    c = Conn(dec)
    big, small = sip(body=b"z" * 20000), sip("BYE")
    out = c.send_all(big + small, mss=1000)
    assert [p.data for p in out] == [small]
    assert dec.dropped["tcp.sip_message_too_big"] == 1


def test_bad_content_length_is_counted() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    msg = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: abc\r\n\r\n"
    assert [p.data for p in c.send(msg)] == [msg]
    assert dec.errors["tcp.sip_bad_content_length"] == 1


def test_response_stream_and_fin_close() -> None:
    dec = FrameDecoder()
    c = Conn(dec, server=True)
    resp = b"SIP/2.0 200 OK\r\nCall-ID: c1\r\nContent-Length: 0\r\n\r\n"
    assert [p.data for p in c.send(resp)] == [resp]
    c.send(b"SIP/2.0 180 Ring", FIN)
    assert dec.tcp_streams == 0
    assert dec.errors["tcp.incomplete_message"] == 1


def test_rst_forgets_both_directions() -> None:
    dec = FrameDecoder()
    a = Conn(dec)
    b = Conn(dec, server=True)
    a.send(sip()[:50])
    b.send(b"SIP/2.0 100 Trying\r\n")
    assert dec.tcp_streams == 2
    a.send(b"", RST)
    assert dec.tcp_streams == 0


def test_syn_on_a_reused_four_tuple_starts_a_new_stream() -> None:
    dec = FrameDecoder()
    a = Conn(dec)
    a.send(sip()[:30])
    b = Conn(dec, isn=777777)
    assert [p.data for p in b.send(sip("BYE"))] == [sip("BYE")]


def test_non_sip_tcp_is_skipped_and_not_kept() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    assert c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(100)) == []  # TLS
    assert c.send(os.urandom(200)) == []
    assert dec.skipped["tcp.not_sip"] == 2
    assert dec.tcp_streams == 0


def test_stream_table_is_bounded() -> None:
    dec = FrameDecoder(max_tcp_streams=3)
    for port in range(10):
        pkt = ipv4("10.0.0.1", "10.0.0.2", 6, tcp(port + 1, 5060, 1, PSH_ACK, sip()[:40]))
        dec.decode(frame(ether(pkt)))
    assert dec.tcp_streams == 3
    assert dec.dropped["tcp.stream_evicted"] == 7


# -- WebSocket -----------------------------------------------------------------------------------

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
)


def ws_frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bytes | None = None) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, n | (0x80 if mask else 0))
    elif n < 65536:
        head = struct.pack("!BBH", b0, 126 | (0x80 if mask else 0), n)
    else:
        head = struct.pack("!BBQ", b0, 127 | (0x80 if mask else 0), n)
    if mask:
        return head + mask + unmask(payload, mask)
    return head + payload


def test_unmask_is_an_involution() -> None:
    data = os.urandom(1001)
    key = b"\x01\x02\x03\x04"
    assert unmask(unmask(data, key), key) == data
    assert unmask(b"abcd", key) == bytes(x ^ y for x, y in zip(b"abcd", key, strict=True))


def test_websocket_masked_fragmented_and_control_frames() -> None:
    dec = FrameDecoder()
    client = Conn(dec)
    server = Conn(dec, server=True)
    assert client.send(UPGRADE) == []
    assert server.send(SWITCHING) == []
    invite = sip(body=b"v=0\r\n" * 100)
    key = b"\x37\xfa\x21\x3d"
    stream = (
        ws_frame(invite[:100], opcode=1, fin=False, mask=key)
        + ws_frame(b"", opcode=9, mask=key)  # a ping in the middle of a fragmented message
        + ws_frame(invite[100:300], opcode=0, fin=False, mask=key)
        + ws_frame(invite[300:], opcode=0, fin=True, mask=key)
    )
    out = client.send_all(stream, mss=77)
    assert [(p.transport, p.data) for p in out] == [("ws", invite)]
    assert out[0].frame == client.number
    assert client.send(ws_frame(b"not sip at all", mask=key)) == []
    resp = b"SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n"
    (p,) = server.send(ws_frame(resp, opcode=2))  # server frames are unmasked; binary is fine too
    assert (p.transport, p.data, p.src_port) == ("ws", resp, 5060)
    assert dec.skipped["ws.not_sip"] == 1


def test_websocket_handshake_and_first_frame_in_one_segment() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    msg = sip("REGISTER")
    out = c.send(UPGRADE + ws_frame(msg, mask=b"abcd") + ws_frame(sip("BYE"), mask=b"efgh"))
    assert [p.data for p in out] == [msg, sip("BYE")]


def test_websocket_large_message_with_64bit_length() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    c.send(UPGRADE)
    msg = sip(body=b"q" * 70000)
    assert [p.data for p in c.send_all(ws_frame(msg, mask=b"\0\1\2\3"))] == [msg]


def test_websocket_permessage_deflate() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    c.send(UPGRADE)
    comp = zlib.compressobj(wbits=-15)
    out: list[Payload] = []
    msgs = [sip("INVITE", b"v=0\r\n" * 20), sip("ACK")]
    for msg in msgs:
        data = comp.compress(msg) + comp.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        frame_ = bytearray(ws_frame(data[:-4], mask=b"mask"))
        frame_[0] |= 0x40  # RSV1: compressed, second message refers back to the first (context takeover)
        out += c.send(bytes(frame_))
    assert [p.data for p in out] == msgs


def test_plain_http_is_not_sip() -> None:
    dec = FrameDecoder()
    c = Conn(dec)
    assert c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == []
    assert dec.skipped["tcp.not_sip"] == 1
    assert dec.tcp_streams == 0
