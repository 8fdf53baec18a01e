"""A call's SIP messages as a pcap file Wireshark and sngrep open (``/calls/{id}.pcap``).

The store keeps each message's exact bytes, addresses, ports, transport and capture time,
not the frames around it; this module wraps every message again in Ethernet, IPv4 or IPv6
and UDP or TCP (with valid checksums, via dpkt) at its original timestamp. TCP-borne
messages (TLS and WebSocket ones are stored decrypted and unframed) become one segment
each, with sequence numbers that continue per direction, so dissectors read them as a
stream; SCTP-borne ones go out as SCTP DATA chunks (fragmented past a chunk's size, with
TSNs and stream sequence numbers that continue per direction, CRC32c checksums).

WebSocket-borne ones (RFC 7118) go out as WebSocket text frames, masked from the client,
after an HTTP upgrade (``Sec-WebSocket-Protocol: sip``) written before a connection's first
message: the original handshake is not stored, and without one no dissector reads the frames
as WebSocket. The side that sent the connection's first message counts as the client.

TLS messages stay plain TCP: there are no keys to encrypt them again, and a reader wants
the text (Wireshark may need *Decode As... SIP* on port 5061).
"""

import io
import ipaddress
import struct
from collections.abc import Iterable

import dpkt

from callqual.ui.model import SipMessageLike

_MAC_SRC = bytes.fromhex("020000000001")
_MAC_DST = bytes.fromhex("020000000002")
_TCP_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss"})
_WS_TRANSPORTS = frozenset({"ws", "wss"})
_WS_MASK = b"\x37\xfa\x21\x3d"  # RFC 6455 5.3 wants it unpredictable; a reader only needs one
_WS_UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: %b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
_WS_ACCEPT = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
)
_TCP_FIRST_SEQ = 1
#: TCP segment payloads are bounded by the 16-bit IP length; a longer SIP message is
#: split into segments of this size (a stream reassembler joins them again).
_MAX_SEGMENT = 60_000


#: SCTP DATA chunk payloads: one SIP message per user message (RFC 4168), fragmented past this
_MAX_SCTP_FRAGMENT = 60_000
_SCTP_DATA = 0
_SCTP_BEGIN_END = (0x02, 0x01)
_TRANSPORT_PROTOCOLS = {
    dpkt.tcp.TCP: dpkt.ip.IP_PROTO_TCP,
    dpkt.udp.UDP: dpkt.ip.IP_PROTO_UDP,
    dpkt.sctp.SCTP: dpkt.ip.IP_PROTO_SCTP,
}


#: (src ip, src port, dst ip, dst port): one direction of a TCP connection or SCTP association
_FlowKey = tuple[str, int, str, int]


def _sctp_packets(m: SipMessageLike, sctp_seq: dict[_FlowKey, tuple[int, int]]) -> list[dpkt.Packet]:
    """One SCTP packet per DATA chunk: the message whole, or its fragments (B, -, ..., E)."""
    key = (m.src_ip, m.src_port, m.dst_ip, m.dst_port)
    tsn, ssn = sctp_seq.get(key, (1, 0))
    pieces = [m.raw[i : i + _MAX_SCTP_FRAGMENT] for i in range(0, max(len(m.raw), 1), _MAX_SCTP_FRAGMENT)]
    packets = []
    for i, piece in enumerate(pieces):
        flags = (_SCTP_BEGIN_END[0] if i == 0 else 0) | (_SCTP_BEGIN_END[1] if i == len(pieces) - 1 else 0)
        body = struct.pack("!IHHI", tsn, 0, ssn & 0xFFFF, 0) + piece
        chunk = dpkt.sctp.Chunk(type=_SCTP_DATA, flags=flags, len=4 + len(body), data=body)
        chunk.padding = bytes(-len(body) % 4)  # DATA chunks end on a 4-byte boundary
        packets.append(dpkt.sctp.SCTP(sport=m.src_port, dport=m.dst_port, vtag=1, chunks=[chunk]))
        tsn = (tsn + 1) & 0xFFFFFFFF
    sctp_seq[key] = (tsn, ssn + 1)
    return packets


def _ws_frame(payload: bytes, masked: bool) -> bytes:
    """One final text frame (RFC 6455 5.2), masked as a client must send it."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, n | (0x80 if masked else 0)])
    elif n < 1 << 16:
        head = bytes([0x81, 126 | (0x80 if masked else 0)]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 127 | (0x80 if masked else 0)]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = (_WS_MASK * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    return head + _WS_MASK + body


def _transport_segments(
    m: SipMessageLike, tcp_seq: dict[_FlowKey, int], sctp_seq: dict[_FlowKey, tuple[int, int]]
) -> list[dpkt.Packet]:
    if m.transport.lower() == "sctp":
        return _sctp_packets(m, sctp_seq)
    if m.transport.lower() not in _TCP_TRANSPORTS:
        return [dpkt.udp.UDP(sport=m.src_port, dport=m.dst_port, ulen=8 + len(m.raw), data=m.raw)]
    return _tcp_segments(_ends(m), m.raw, tcp_seq)


def _ends(m: SipMessageLike) -> _FlowKey:
    return (m.src_ip, m.src_port, m.dst_ip, m.dst_port)


def _tcp_segments(key: _FlowKey, raw: bytes, tcp_seq: dict[_FlowKey, int]) -> list[dpkt.Packet]:
    """``raw`` as the next bytes of the TCP stream from ``key``'s source to its destination."""
    src_ip, src_port, dst_ip, dst_port = key
    segments = []
    for start in range(0, max(len(raw), 1), _MAX_SEGMENT):
        chunk = raw[start : start + _MAX_SEGMENT]
        seq = tcp_seq.get(key, _TCP_FIRST_SEQ)
        tcp_seq[key] = seq + len(chunk)
        segments.append(
            dpkt.tcp.TCP(
                sport=src_port,
                dport=dst_port,
                seq=seq,
                ack=tcp_seq.get((dst_ip, dst_port, src_ip, src_port), _TCP_FIRST_SEQ),
                flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH,
                win=65535,
                data=chunk,
            )
        )
    return segments


def _ip_packet(key: _FlowKey, segment: dpkt.Packet) -> tuple[dpkt.Packet, int]:
    proto = _TRANSPORT_PROTOCOLS[type(segment)]
    src, dst = ipaddress.ip_address(key[0]), ipaddress.ip_address(key[2])
    if src.version == 6 or dst.version == 6:
        ip6 = dpkt.ip6.IP6(
            src=_v6(src).packed,
            dst=_v6(dst).packed,
            nxt=proto,
            hlim=64,
            plen=len(bytes(segment)),
            data=segment,
        )
        return ip6, dpkt.ethernet.ETH_TYPE_IP6
    ip4 = dpkt.ip.IP(src=src.packed, dst=dst.packed, p=proto, ttl=64, data=segment)
    return ip4, dpkt.ethernet.ETH_TYPE_IP


def _v6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """One IPv4 end of a mixed pair (a dual-stack proxy) as IPv4-mapped, so both fit one header."""
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{address}")
    return address


def export_pcap(messages: Iterable[SipMessageLike]) -> bytes:
    """The messages, in the order given, as a nanosecond pcap (link type Ethernet)."""
    buffer = io.BytesIO()
    writer = dpkt.pcap.Writer(buffer, snaplen=262_144, linktype=dpkt.pcap.DLT_EN10MB, nano=True)
    tcp_seq: dict[_FlowKey, int] = {}
    sctp_seq: dict[_FlowKey, tuple[int, int]] = {}
    #: WebSocket connections upgraded so far: (client ip, port, server ip, port)
    ws_clients: set[_FlowKey] = set()
    for m in messages:
        when = m.ts.timestamp()
        if m.transport.lower() in _WS_TRANSPORTS:
            segments = _ws_segments(m, tcp_seq, ws_clients)
        else:
            segments = [(_ends(m), s) for s in _transport_segments(m, tcp_seq, sctp_seq)]
        for sender, segment in segments:
            ip, ethertype = _ip_packet(sender, segment)
            frame = dpkt.ethernet.Ethernet(src=_MAC_SRC, dst=_MAC_DST, type=ethertype, data=ip)
            writer.writepkt(bytes(frame), ts=when)
    return buffer.getvalue()


def _ws_segments(
    m: SipMessageLike, tcp_seq: dict[_FlowKey, int], ws_clients: set[_FlowKey]
) -> list[tuple[_FlowKey, dpkt.Packet]]:
    """The message as a WebSocket frame, after the connection's upgrade if it is its first."""
    forward = _ends(m)
    backward = (m.dst_ip, m.dst_port, m.src_ip, m.src_port)
    out: list[tuple[_FlowKey, dpkt.Packet]] = []
    if forward not in ws_clients and backward not in ws_clients:
        ws_clients.add(forward)
        host = f"{m.dst_ip}:{m.dst_port}".encode()
        out += [(forward, s) for s in _tcp_segments(forward, _WS_UPGRADE % host, tcp_seq)]
        out += [(backward, s) for s in _tcp_segments(backward, _WS_ACCEPT, tcp_seq)]
    frame = _ws_frame(m.raw, masked=forward in ws_clients)
    out += [(forward, s) for s in _tcp_segments(forward, frame, tcp_seq)]
    return out
