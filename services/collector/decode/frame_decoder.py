"""From a captured frame to transport payloads: the collector's general decode path.

Layers live in their own modules (link layer, IP, fragments, tunnels, TCP
streams, WebSocket, SCTP); this class wires them together and owns the three
counters that explain every frame that produced no payload:

* ``errors``  -- the frame is malformed (``ip.truncated``, ``udp.bad_length``...);
* ``skipped`` -- the frame is fine but deliberately not analysed
  (``link.unsupported_linktype``, ``ip.non_udp_tcp``, ``tcp.not_sip``...);
* ``dropped`` -- state was thrown away to keep memory bounded
  (``ip.fragment_evicted``, ``tcp.stream_evicted``, ``tcp.sip_header_too_long``...).

RTP media takes :mod:`fast_path` instead once its flow is known; this path
is for everything else and for the first packets of a flow.
"""

from __future__ import annotations

import struct
from collections import Counter

from callqual.collector.decode.ip import IpHeader, parse_ipv4, parse_ipv6, walk_ipv6_extensions
from callqual.collector.decode.ip_fragments import FragmentReassembler
from callqual.collector.decode.linklayer import ETH_IPV4, ETH_IPV6, SkipFrame, strip_ethernet, strip_link
from callqual.collector.decode.sctp import SctpMessages
from callqual.collector.decode.tcp_stream import TcpStreams
from callqual.collector.decode.tunnels import INNER_ETHERNET, parse_gre
from callqual.collector.errors import PacketDecodeError
from callqual.collector.packet import Frame, Payload
from callqual.schemas.packet_content import MAX_SIP_MESSAGE_BYTES

__all__ = ["FrameDecoder"]

_UDP = 17
_TCP = 6
_SCTP = 132
_IPIP = 4
_IPV6_IN_IP = 41
_GRE = 47
_IPV6_EXT = frozenset((0, 43, 44, 51, 60, 135, 139, 140))
#: fixed IP header sizes, which must have been captured whatever the frame's length on the wire
_IP_HEADER_BYTES = {ETH_IPV4: 20, ETH_IPV6: 40}


class FrameDecoder:
    """Decodes frames to UDP datagrams and framed SIP messages (TCP, WebSocket, SCTP).

    Stateful (IP fragments, TCP streams), so use one instance per capture
    source and feed it frames in capture order. ``decode`` never raises for
    bad input: every problem lands in one of the counters.
    """

    def __init__(
        self,
        max_fragment_buffers: int = 1024,
        max_tcp_streams: int = 4096,
        max_tcp_buffer: int = MAX_SIP_MESSAGE_BYTES,
        fragment_timeout: float = 30.0,
        max_tunnel_depth: int = 4,
    ) -> None:
        self.errors: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.max_tunnel_depth = max_tunnel_depth
        self._frags = FragmentReassembler(max_fragment_buffers, fragment_timeout)
        self._frags.dropped = self.dropped
        self._tcp = TcpStreams(max_tcp_streams, max_tcp_buffer, self.errors, self.skipped, self.dropped)
        self._sctp = SctpMessages(max_fragment_buffers, max_tcp_buffer, self.skipped, self.dropped)

    @property
    def fragment_buffers(self) -> int:
        """Partial datagrams currently held (for gauges)."""
        return len(self._frags)

    @property
    def tcp_streams(self) -> int:
        """TCP directions currently followed (for gauges)."""
        return len(self._tcp)

    def decode(self, frame: Frame) -> list[Payload]:
        out: list[Payload] = []
        try:
            data = frame.data
            etype, off = strip_link(frame.linktype, data)
            # A frame the snaplen cut (orig_len > caplen) is read to its length on the wire:
            # _network then takes what was captured of a UDP payload (see _snapped_udp).
            self._network(frame, etype, data, off, max(len(data), frame.orig_len), depth=0, out=out)
        except SkipFrame as e:
            self.skipped[e.reason] += 1
        except PacketDecodeError as e:
            self.errors[e.reason] += 1
        except (IndexError, ValueError, struct.error):
            # Safety net: every layer checks its lengths, but a decoder that
            # dies on one crafted frame would take the whole capture with it.
            self.errors["decode.malformed"] += 1
        return out

    def _network(
        self, frame: Frame, etype: int, data: bytes, off: int, end: int, *, depth: int, out: list[Payload]
    ) -> None:
        ip: IpHeader
        if off + _IP_HEADER_BYTES.get(etype, 0) > len(data):  # ``end`` may be past a snaplen cut
            raise PacketDecodeError("ip.truncated", "header")
        if etype == ETH_IPV4:
            ip = parse_ipv4(data, off, end)
        elif etype == ETH_IPV6:
            ip = parse_ipv6(data, off, end)
        else:
            raise SkipFrame("link.non_ip")
        proto, poff, pend = ip.proto, ip.off, ip.end
        if pend > len(data):
            self._snapped_udp(frame, ip, data, out)
            return
        if ip.ident >= 0:
            key = (ip.version, ip.src, ip.dst, ip.ident, proto)
            whole = self._frags.add(key, ip.frag_offset, ip.more_fragments, data[poff:pend], frame.ts)
            if whole is None:
                self.skipped["ip.fragment_queued"] += 1
                return
            data, poff, pend = whole, 0, len(whole)
            if ip.version == 6 and proto in _IPV6_EXT:
                proto, poff, _ = walk_ipv6_extensions(proto, data, 0, pend)
        src, dst = ip.src, ip.dst
        if proto == _UDP:
            if poff + 8 > pend:
                raise PacketDecodeError("udp.truncated", "header")
            ulen = (data[poff + 4] << 8) | data[poff + 5]
            if ulen < 8:
                raise PacketDecodeError("udp.bad_length", str(ulen))
            if poff + ulen > pend:
                raise PacketDecodeError("udp.truncated", "payload")
            if ulen == 8:
                self.skipped["udp.empty"] += 1
                return
            out.append(
                Payload(
                    frame.number,
                    frame.ts,
                    src,
                    (data[poff] << 8) | data[poff + 1],
                    dst,
                    (data[poff + 2] << 8) | data[poff + 3],
                    "udp",
                    data[poff + 8 : poff + ulen],
                )
            )
        elif proto == _TCP:
            if poff + 20 > pend:
                raise PacketDecodeError("tcp.truncated", "header")
            doff = (data[poff + 12] >> 4) * 4
            if doff < 20:
                raise PacketDecodeError("tcp.bad_header_length", str(doff))
            if poff + doff > pend:
                raise PacketDecodeError("tcp.truncated", "options")
            sport = (data[poff] << 8) | data[poff + 1]
            dport = (data[poff + 2] << 8) | data[poff + 3]
            seq = int.from_bytes(data[poff + 4 : poff + 8], "big")
            flags = data[poff + 13]
            for transport, msg in self._tcp.segment(
                (src, sport, dst, dport), seq, flags, data[poff + doff : pend]
            ):
                out.append(Payload(frame.number, frame.ts, src, sport, dst, dport, transport, msg))
        elif proto == _SCTP:
            sport, dport, msgs = self._sctp.packet(src, dst, data, poff, pend)
            for msg in msgs:
                out.append(Payload(frame.number, frame.ts, src, sport, dst, dport, "sctp", msg))
        elif proto in (_IPIP, _IPV6_IN_IP, _GRE):
            if depth >= self.max_tunnel_depth:
                raise PacketDecodeError("tunnel.too_deep", str(depth))
            if proto == _GRE:
                inner, ioff = parse_gre(data, poff, pend)
                inner_data = data[ioff:pend]
                if inner == INNER_ETHERNET:
                    inner, ioff = strip_ethernet(inner_data, 0)
                else:
                    ioff = 0
                self._network(frame, inner, inner_data, ioff, len(inner_data), depth=depth + 1, out=out)
            else:
                inner_data = data[poff:pend]
                inner = ETH_IPV4 if proto == _IPIP else ETH_IPV6
                self._network(frame, inner, inner_data, 0, len(inner_data), depth=depth + 1, out=out)
        else:
            raise SkipFrame("ip.non_udp_tcp")

    def _snapped_udp(self, frame: Frame, ip: IpHeader, data: bytes, out: list[Payload]) -> None:
        """A datagram the capture's snaplen cut: its UDP payload as far as captured, and how much is missing.

        ``tcpdump -s 200`` keeps every RTP header, which is all that stream
        statistics need (tshark analyses such captures). A fragment, TCP or a
        tunnel cannot be put together from a part, so those stay ``ip.truncated``;
        so does a frame that was not cut by the capture but lies about its length.
        """
        poff, pend = ip.off, ip.end
        if ip.proto != _UDP or ip.ident >= 0:
            raise PacketDecodeError("ip.truncated", "snapped")
        if poff + 8 > len(data):
            raise PacketDecodeError("udp.truncated", "snapped header")
        ulen = (data[poff + 4] << 8) | data[poff + 5]
        if ulen < 8 or poff + ulen > pend:
            raise PacketDecodeError("udp.bad_length", str(ulen))
        self.skipped["udp.snapped"] += 1
        payload = data[poff + 8 : poff + ulen]
        src_port = (data[poff] << 8) | data[poff + 1]
        dst_port = (data[poff + 2] << 8) | data[poff + 3]
        cut = ulen - 8 - len(payload)
        out.append(Payload(frame.number, frame.ts, ip.src, src_port, ip.dst, dst_port, "udp", payload, cut))
