"""Which media flows one collector analyses when several processes share one capture.

``callqual analyze --workers N`` runs N collectors over the same file. Each
one decodes every frame and tracks all signalling (a flow's binding comes from
SDP anywhere in the capture), but keeps RTP statistics only for the flows it
owns: the per-packet work, which is most of an RTP capture's, is split N ways.
Ownership is a stable hash of the flow's 4-tuple, so every process agrees on
it without talking to the others, and a flow never changes owner. Share 0
also runs the detector and emits every SIP and RTCP event, so it owns half as
many flows as each other share (a third of them with two).

Only the statistics are split, not the schedule. Every process keeps each
flow's timing (last packet, last report) and SSRCs, its own or not, so it
makes the one-process decisions that depend on all flows of a call or a
chunk: the quiet probe (a call is probed when one of its flows is idle, which
a share holding half of them cannot tell), interval reports, closing, when
staged packets are handed over. Those decide where a stream's packets are
split into drains, and the vectorised statistics round per drained batch:
the same split is what makes ``--workers N`` byte-identical to one process.
Deciding in share 0 and sending the decisions to the others would cost a
round trip per tick; tracking the timing costs a dict entry per flow.
"""

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FlowShard:
    """Share ``index`` of ``count``: the flows whose hash falls on ``index``."""

    index: int
    count: int

    def owns(self, src_ip: str, src_port: int, dst_ip: str, dst_port: int) -> bool:
        key = f"{src_ip}|{src_port}|{dst_ip}|{dst_port}".encode()
        # Buckets 0 | 1 2 | 3 4 | ...: share 0 one, every other share two.
        return (zlib.crc32(key) % (2 * self.count - 1) + 1) // 2 == self.index
