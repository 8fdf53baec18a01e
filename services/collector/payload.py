"""A transport payload: what the collector's decoders hand to signalling and media, compiled.

Its own module so that mypyc compiles it (``packet.py`` is not: a compiled ``Frame`` would refuse
a broken source's ``ts=None`` before the frame guard could count it). Every SIP message is one
``Payload``, built once and read a dozen times by compiled code: as a native class that is a
direct constructor call and field reads, not an interpreted ``__init__`` and generic attribute
look-ups (bench/RESULTS.md, session 7, sip-child). ``packet`` re-exports it.
"""

from dataclasses import dataclass

__all__ = ["Payload"]


@dataclass(slots=True, init=False)
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
    #: bytes of a UDP payload the capture did not keep (its snaplen cut the frame); ``data`` is the rest
    cut: int = 0

    def __init__(  # noqa: PLR0917 - the dataclass's fields, in order
        self,
        frame: int,
        ts: float,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        transport: str,
        data: bytes,
        cut: int = 0,
    ) -> None:
        # Written out, not generated: mypyc leaves a dataclass's generated __init__ interpreted.
        self.frame = frame
        self.ts = ts
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.transport = transport
        self.data = data
        self.cut = cut
