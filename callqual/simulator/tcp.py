"""SIP over TCP: a connection's handshake, segments and ACKs around a list of timed messages.

Sequence and acknowledgement numbers are derived from the messages in
capture order, so a reader's stream reassembly sees one consistent byte
stream per direction; messages larger than the MSS span several segments,
which is what SIP-over-TCP framing (by Content-Length) exists for.
"""

import random
import struct

from callqual.simulator.pcap_writer import internet_checksum, ipv4_frame

IPPROTO_TCP = 6
MSS = 1460
WINDOW = 64240
_SYN, _PSH, _ACK = 0x02, 0x08, 0x10
_HEADER = struct.Struct(">HHIIHHHH")

#: (capture time us, sent by the client?, message bytes)
TimedMessage = tuple[int, bool, bytes]
Endpoint = tuple[str, int]


class _Side:
    def __init__(self, endpoint: Endpoint, isn: int, ip_id: int) -> None:
        self.ip, self.port = endpoint
        self.next_seq = isn
        self.ip_id = ip_id


def _segment(
    src: _Side, dst: _Side, seq: int, ack: int, *, flags: int, data: bytes = b"", syn: bool = False
) -> bytes:
    options = struct.pack(">BBH", 2, 4, MSS) if syn else b""
    offset = (20 + len(options)) // 4
    header = _HEADER.pack(
        src.port, dst.port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (offset << 12) | flags, WINDOW, 0, 0
    )
    segment = header + options + data
    pseudo = bytes(int(x) for x in src.ip.split(".")) + bytes(int(x) for x in dst.ip.split("."))
    pseudo += struct.pack(">BBH", 0, IPPROTO_TCP, len(segment))
    checksum = internet_checksum(pseudo + segment)
    segment = segment[:16] + struct.pack(">H", checksum) + segment[18:]
    frame = ipv4_frame(src.ip, dst.ip, IPPROTO_TCP, src.ip_id, segment)
    src.ip_id = (src.ip_id + 1) & 0xFFFF
    return frame


def tcp_conversation(
    messages: list[TimedMessage],
    *,
    client: Endpoint,
    server: Endpoint,
    rtt_client_us: int,
    rtt_server_us: int,
    rng: random.Random,
) -> list[tuple[int, bytes]]:
    """Frames of one client-opened connection carrying ``messages``; it stays open, as SIP UAs keep it.

    The capture point sits between the two hosts: a segment captured at ``t``
    is acknowledged by its receiver at ``t + rtt_receiver`` unless the
    receiver sends data (which carries the ACK) before then.
    """
    if not messages:
        return []
    msgs = sorted(messages, key=lambda m: m[0])
    c = _Side(client, rng.getrandbits(32), rng.randrange(65536))
    s = _Side(server, rng.getrandbits(32), rng.randrange(65536))
    out: list[tuple[int, bytes]] = []
    t = msgs[0][0] - rtt_server_us - rtt_client_us - 1000
    out.append((t, _segment(c, s, c.next_seq, 0, flags=_SYN, syn=True)))
    c.next_seq += 1
    t += rtt_server_us
    out.append((t, _segment(s, c, s.next_seq, c.next_seq, flags=_SYN | _ACK, syn=True)))
    s.next_seq += 1
    t += rtt_client_us
    out.append((t, _segment(c, s, c.next_seq, s.next_seq, flags=_ACK)))
    for n, (t_msg, from_client, data) in enumerate(msgs):
        src, dst = (c, s) if from_client else (s, c)
        for offset in range(0, len(data), MSS):
            chunk = data[offset : offset + MSS]
            last = offset + MSS >= len(data)
            flags = _ACK | (_PSH if last else 0)
            out.append((t_msg, _segment(src, dst, src.next_seq, dst.next_seq, flags=flags, data=chunk)))
            src.next_seq += len(chunk)
        rtt_receiver = rtt_server_us if from_client else rtt_client_us
        t_ack = t_msg + rtt_receiver
        receiver_speaks = any(
            t_other <= t_ack and other_from_client != from_client
            for t_other, other_from_client, _ in msgs[n + 1 :]
        )
        sender_continues = any(
            t_other <= t_ack and other_from_client == from_client
            for t_other, other_from_client, _ in msgs[n + 1 :]
        )
        # The receiver acknowledges with its own data when it answers in time; when the sender
        # sends more first, one ACK covers both. Otherwise a bare ACK, so ACK numbers only grow.
        if not receiver_speaks and not sender_continues:
            out.append((t_ack, _segment(dst, src, dst.next_seq, src.next_seq, flags=_ACK)))
    out.sort(key=lambda item: item[0])
    return out
