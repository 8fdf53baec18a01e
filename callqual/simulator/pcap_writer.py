"""Classic libpcap output (Ethernet / IPv4 / UDP) written byte by byte with ``struct``.

Hand-built frames instead of a packet library: the load scenario writes more
than a million packets and must do it in seconds, and a byte-exact,
dependency-free writer is what makes the same seed give the same file.

The UDP checksum is left at 0 ("not computed", allowed for IPv4 by RFC 768),
as on captures taken on a host with checksum offload; the IPv4 header checksum
is always correct because readers do verify it.
"""

import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

PCAP_MAGIC_US = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
ETHERTYPE_IPV4 = 0x0800
IPPROTO_UDP = 17
#: Ethernet payload size; SIP datagrams bigger than this minus the IP header are fragmented.
DEFAULT_MTU = 1500

#: (capture time in us, source index, sequence within the source, Ethernet frame): tuples sort by
#: time first and the two integers make every key unique, so merging never compares frames.
TimedFrame = tuple[int, int, int, bytes]

_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
#: IPv4 header from total length to checksum, then the UDP header; addresses are precomputed bytes.
_IP_VARIABLE = struct.Struct(">HHHBBH")
_UDP_HEADER = struct.Struct(">HHHH")
_FLAG_DF = 0x4000
_FLAG_MF = 0x2000
_IP_HEADER_LEN = 20
_UDP_HEADER_LEN = 8


def mac_for(ip: str) -> bytes:
    """A locally administered MAC derived from the IP, so each host keeps one MAC across the capture."""
    return bytes([0x02, 0x00, *(int(part) for part in ip.split("."))])


def _ip_bytes(ip: str) -> bytes:
    return bytes(int(part) for part in ip.split("."))


def _word_sum(data: bytes) -> int:
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    return total


def internet_checksum(data: bytes) -> int:
    """RFC 1071 ones'-complement checksum (odd lengths padded with a zero byte)."""
    if len(data) % 2:
        data += b"\x00"
    s = _word_sum(data)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4_frame(
    src_ip: str, dst_ip: str, protocol: int, ip_id: int, payload: bytes, *, ttl: int = 64
) -> bytes:
    """An Ethernet frame around one unfragmented IPv4 packet (DF set): the generic, slow path."""
    addresses = _ip_bytes(src_ip) + _ip_bytes(dst_ip)
    header = b"\x45\x00" + struct.pack(
        ">HHHBBH", _IP_HEADER_LEN + len(payload), ip_id, _FLAG_DF, ttl, protocol, 0
    )
    header += addresses
    checksum = internet_checksum(header)
    header = header[:10] + struct.pack(">H", checksum) + header[12:]
    eth = mac_for(dst_ip) + mac_for(src_ip) + struct.pack(">H", ETHERTYPE_IPV4)
    return eth + header + payload


class UdpFlow:
    """One direction of a UDP conversation, with everything but the varying header fields precomputed.

    The IP identification counter lives here (per flow, as Linux keeps it per
    socket), and the header checksum is finished incrementally from a
    precomputed sum, which keeps per-packet work to one ``struct`` call.
    """

    __slots__ = (
        "_addr_bytes",
        "_base_sum",
        "_eth",
        "_ip_id",
        "_max_udp_payload",
        "_ports",
        "dst_ip",
        "dst_port",
        "mtu",
        "src_ip",
        "src_port",
        "ttl",
    )

    def __init__(
        self,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        *,
        ttl: int = 64,
        ip_id: int = 1,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.ttl = ttl
        self.mtu = mtu
        self._ip_id = ip_id & 0xFFFF
        self._eth = mac_for(dst_ip) + mac_for(src_ip) + struct.pack(">H", ETHERTYPE_IPV4)
        self._addr_bytes = _ip_bytes(src_ip) + _ip_bytes(dst_ip)
        # version/IHL + TOS word, TTL/protocol word and both addresses never change.
        self._base_sum = 0x4500 + ((ttl << 8) | IPPROTO_UDP) + _word_sum(self._addr_bytes)
        self._ports = (src_port, dst_port)
        self._max_udp_payload = mtu - _IP_HEADER_LEN - _UDP_HEADER_LEN

    def frame(self, payload: bytes) -> bytes:
        """One unfragmented Ethernet frame (DF set); the caller guarantees it fits the MTU."""
        udp_len = _UDP_HEADER_LEN + len(payload)
        total_len = _IP_HEADER_LEN + udp_len
        ip_id = self._ip_id
        self._ip_id = (ip_id + 1) & 0xFFFF
        s = self._base_sum + total_len + ip_id + _FLAG_DF
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return b"".join(
            (
                self._eth,
                b"\x45\x00",
                _IP_VARIABLE.pack(total_len, ip_id, _FLAG_DF, self.ttl, IPPROTO_UDP, ~s & 0xFFFF),
                self._addr_bytes,
                _UDP_HEADER.pack(self.src_port, self.dst_port, udp_len, 0),
                payload,
            )
        )

    def fixed_length_framer(self, payload_len: int) -> Callable[[bytes], bytes]:
        """A specialised ``frame`` for payloads of one length (G.711/G.729 RTP), about twice as fast.

        Everything but the IP identification and checksum is baked into two
        byte strings; it shares the flow's identification counter.
        """
        udp_len = _UDP_HEADER_LEN + payload_len
        total_len = _IP_HEADER_LEN + udp_len
        head = self._eth + struct.pack(">HH", 0x4500, total_len)
        middle = struct.pack(">HBB", _FLAG_DF, self.ttl, IPPROTO_UDP)
        after = self._addr_bytes + _UDP_HEADER.pack(self.src_port, self.dst_port, udp_len, 0)
        base = self._base_sum + total_len + _FLAG_DF
        id_pack = struct.Struct(">H").pack
        join = b"".join

        def framer(payload: bytes) -> bytes:
            ip_id = self._ip_id
            self._ip_id = (ip_id + 1) & 0xFFFF
            s = base + ip_id
            s = (s & 0xFFFF) + (s >> 16)
            s = (s & 0xFFFF) + (s >> 16)
            return join((head, id_pack(ip_id), middle, id_pack(~s & 0xFFFF), after, payload))

        return framer

    def frames(self, payload: bytes) -> list[bytes]:
        """The frames carrying ``payload``: one, or IPv4 fragments when it exceeds the MTU.

        Large SIP over UDP is fragmented by the sender's IP layer (RFC 3261
        18.1.1 allows UDP up to the path MTU only, but real UACs send bigger
        INVITEs anyway); readers must reassemble, so the simulator produces it.
        """
        if len(payload) <= self._max_udp_payload:
            return [self.frame(payload)]
        datagram = _UDP_HEADER.pack(self.src_port, self.dst_port, _UDP_HEADER_LEN + len(payload), 0) + payload
        ip_id = self._ip_id
        self._ip_id = (ip_id + 1) & 0xFFFF
        chunk = (self.mtu - _IP_HEADER_LEN) // 8 * 8
        out: list[bytes] = []
        for offset in range(0, len(datagram), chunk):
            piece = datagram[offset : offset + chunk]
            more = _FLAG_MF if offset + chunk < len(datagram) else 0
            flags_frag = more | (offset // 8)
            total_len = _IP_HEADER_LEN + len(piece)
            s = self._base_sum + total_len + ip_id + flags_frag
            s = (s & 0xFFFF) + (s >> 16)
            s = (s & 0xFFFF) + (s >> 16)
            header = _IP_VARIABLE.pack(total_len, ip_id, flags_frag, self.ttl, IPPROTO_UDP, ~s & 0xFFFF)
            out.append(b"".join((self._eth, b"\x45\x00", header, self._addr_bytes, piece)))
        return out


class PcapWriter:
    """Writes frames to a classic microsecond pcap file; timestamps are integer microseconds.

    Integer microseconds end to end (never floats) so that no rounding can
    make two runs or two platforms differ by a byte.
    """

    def __init__(self, path: Path, *, snaplen: int = SNAPLEN) -> None:
        self._file: BinaryIO = path.open("wb")
        self._file.write(_GLOBAL_HEADER.pack(PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        self.packets = 0
        self.bytes_written = _GLOBAL_HEADER.size

    def write(self, ts_us: int, frame: bytes) -> None:
        n = len(frame)
        self._file.write(_RECORD_HEADER.pack(ts_us // 1_000_000, ts_us % 1_000_000, n, n))
        self._file.write(frame)
        self.packets += 1
        self.bytes_written += 16 + n

    def write_many(self, records: Iterable[TimedFrame]) -> None:
        """Bulk path for the load scenario: batches records into large writes."""
        pack = _RECORD_HEADER.pack
        buf: list[bytes] = []
        count = 0
        size = 0
        for ts_us, _source, _seq, frame in records:
            n = len(frame)
            buf.append(pack(ts_us // 1_000_000, ts_us % 1_000_000, n, n))
            buf.append(frame)
            count += 1
            size += 16 + n
            if len(buf) >= 8192:
                self._file.write(b"".join(buf))
                buf.clear()
        if buf:
            self._file.write(b"".join(buf))
        self.packets += count
        self.bytes_written += size

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
