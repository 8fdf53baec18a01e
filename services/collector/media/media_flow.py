"""One UDP 5-tuple known to carry media: the unit the collector's flow table keeps.

Its own module because three parts of the collector share it: the flow table
(which makes, reports and closes flows), the chunk path (which stages packets
for their flows) and the per-frame path (which appends to their streams).
"""

from dataclasses import dataclass, field
from typing import ClassVar

from callqual.collector.media.media_registry import MediaBinding
from callqual.collector.media.rtp_stream import RtpStream

__all__ = ["MediaFlow"]


@dataclass(slots=True)
class MediaFlow:
    """One UDP 5-tuple known to carry RTP or RTCP, with its streams by SSRC."""

    binding: MediaBinding | None
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    streams: dict[int, RtpStream] = field(default_factory=dict)
    last_ts: float = 0.0
    #: capture time of its streams' latest interval report, and its last packet then (``quiet_probe``)
    reported_ts: float = float("-inf")
    reported_last_ts: float = float("-inf")
    #: RTP, not RTCP: what the inline fast path (frame_path) may take
    rtp: bool = True
    #: Another process's (Collector.shard): its RTP packets are read but not analysed here
    foreign: bool = False
    #: A foreign flow's SSRCs: the streams its owner has, kept so that this process schedules
    #: like one collector (see Collector.shard)
    ghosts: set[int] = field(default_factory=set)
    #: Collector.at_frame when the flow entered the flow table: the table's order, which
    #: the processes sharing a capture use to put their interval reports back in order
    inserted: int = 0
    #: Flows made so far, process-wide: part of the state stamp with which the chunk
    #: loop (chunk_path) notices that its flow/stream look-ups may be stale.
    created: ClassVar[int] = 0

    def __post_init__(self) -> None:
        MediaFlow.created += 1
