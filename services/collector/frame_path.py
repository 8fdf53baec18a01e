"""The per-frame path: frames from any iterable, known RTP handled inline, the rest through ``feed``.

``Collector.run`` takes it for sources without ``record_batches()``. RTP of
known flows in plain Ethernet/IPv4/UDP frames with the usual 12-byte header
is nearly every frame of a VoIP capture. For those this loop does the whole
job inline (key slice, dict look-ups, one queue append) with everything it
touches in local variables: a function call per packet costs more in
CPython than the work itself. Every other frame, and every frame of a flow
not yet known, goes through ``Collector.feed``.
"""

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from callqual.collector.decode.fast_path import ETH_IPV4_UDP_HEAD, ETH_IPV4_UDP_PAYLOAD
from callqual.collector.frame_guard import called_from, locals_of
from callqual.collector.media.rtp_stream import PENDING_LIMIT
from callqual.collector.packet import Frame

if TYPE_CHECKING:  # the collector calls into this module; only its type is needed here
    from callqual.collector.collector import Collector

__all__ = ["feed_frames", "frames_failed"]

_RTP_FIXED = struct.Struct("!BBHII").unpack_from

#: What the inline fast path of feed_frames calls into (RtpStream.drain): a failure below
#: it there is the frame's, anything else below the loop is the source's
_INLINE_PATH_MODULES = "callqual.collector.media."


def feed_frames(collector: "Collector", frames: Iterator[Frame]) -> None:
    """The per-frame loop (see the module docstring); ``Collector.feed`` guards every frame it takes."""
    table = collector.flow_table
    media = collector.media
    fast = table.fast
    feed = collector.feed
    head = ETH_IPV4_UDP_HEAD
    rtp_fixed = _RTP_FIXED
    payload_at = ETH_IPV4_UDP_PAYLOAD
    limit = PENDING_LIMIT
    frames_seen = 0
    size = 0
    for frame in frames:
        data = frame.data
        ts = frame.ts
        n = len(data)
        if (
            ts < table.next_tick
            and frame.linktype == 1
            and n >= payload_at + 12
            and data[payload_at] == 0x80
            and media.generation == table.fast_generation
        ):
            etype, vihl, total, frag, proto = head(data, 12)
            if etype == 0x0800 and vihl == 0x45 and proto == 17 and not frag & 0x3FFF and total == n - 14:
                flow = fast.get(data[26:38])
                if flow is not None and flow.rtp:
                    _, b1, seq, rtp_ts, ssrc = rtp_fixed(data, payload_at)
                    stream = flow.streams.get(ssrc)
                    if stream is not None:
                        frames_seen += 1
                        size += frame.orig_len
                        flow.last_ts = ts
                        pending = stream.pending
                        pending.append(
                            (
                                ts,
                                seq,
                                rtp_ts,
                                b1 & 0x7F,
                                b1 > 0x7F,
                                n - payload_at - 12,
                                data,
                                payload_at + 12,
                            )
                        )
                        if len(pending) >= limit:
                            stream.drain()
                        collector.last_ts = ts
                        continue
        feed(frame)
    collector.frames += frames_seen
    collector.bytes += size


def frames_failed(collector: "Collector", exc: Exception, last: Frame | None) -> Frame | None:
    """:func:`feed_frames` raised: count it, keep what it had counted; the frame it failed on.

    None when the source raised instead: the code below the loop is the source's, not
    the media code the inline path calls; or, for a source written in C, no frame yet or
    the one that failed last time again (a source that raises at every step must not keep
    the loop going).
    """
    seen = locals_of(exc, feed_frames)
    collector.frames += seen.get("frames_seen", 0)
    collector.bytes += seen.get("size", 0)
    frame = seen.get("frame")
    below = called_from(exc, feed_frames)
    by_source = below is not None and not below.startswith(_INLINE_PATH_MODULES)
    if by_source or not isinstance(frame, Frame) or frame is last:
        collector.guard.failed(exc)
        return None
    collector.guard.frame_failed(exc, frame)
    return frame
