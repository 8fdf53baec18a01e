"""The two values that flow through the collector's decoding stages."""

from dataclasses import dataclass


@dataclass(slots=True)
class Frame:
    """One captured frame as a capture source yields it."""

    number: int  #: 1-based frame number in the capture (Wireshark's frame.number)
    ts: float  #: capture time, seconds since the epoch
    linktype: int  #: DLT/LINKTYPE_* value of the interface it was captured on
    data: bytes
    orig_len: int  #: length on the wire (>= len(data) when the snaplen cut it)


@dataclass(slots=True)
class Payload:
    """A transport payload: one UDP datagram, or one SIP message framed out of a TCP/WebSocket stream."""

    frame: int  #: frame number of the packet that completed it
    ts: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str  #: 'udp', 'tcp', 'ws', 'sctp'
    data: bytes
