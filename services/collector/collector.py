"""The collector core: frames in, SIP message events and RTP/RTCP reports out.

Pure: a capture source (file or live) feeds :meth:`Collector.feed` (or
:meth:`Collector.run`), and events go to an injected ``emit`` callable (the
in-process detector, or a Kafka producer). Time is the frames' capture time,
never the wall clock.

This module is the entry and the router: a frame of a known media flow goes
straight to the flow table, anything else through the full decoder (tunnels,
VLANs, IPv6, fragments, TCP reassembly) and then to signalling or media.
The parts it composes, one job each:

* ``chunk_path`` / ``chunk_staging``: whole RecordBatches read with numpy, RTP staged per capture second;
* ``frame_path``: the per-frame loop for any other iterable of frames, known RTP handled inline;
* ``media/flow_table``: media flows, their streams, ticks, interval reports and quiet probes;
* ``signalling``: SIP and MGCP payloads, SDP learnt into the media registry, call ends.
"""

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from callqual.collector.chunk_path import ChunkProgress, feed_chunk, recover_chunk
from callqual.collector.chunk_staging import StagedPackets
from callqual.collector.config import CollectorConfig
from callqual.collector.decode.fast_path import (
    udp_flow_key,
    udp_payload,
)
from callqual.collector.decode.frame_decoder import FrameDecoder
from callqual.collector.frame_guard import FailureSink, FrameGuard
from callqual.collector.frame_path import feed_frames, frames_failed
from callqual.collector.media.flow_shard import FlowShard
from callqual.collector.media.flow_table import MediaFlowTable
from callqual.collector.media.media_flow import MediaFlow
from callqual.collector.media.media_registry import MediaRegistry
from callqual.collector.media.rtp_header import is_zrtp, looks_like_rtp
from callqual.collector.mgcp import MGCP_PORTS
from callqual.collector.packet import Frame, Payload, RecordBatch
from callqual.collector.signalling import Signalling
from callqual.collector.sip.message import looks_like_sip
from callqual.schemas import AnyEvent

#: Where the collector's events go (a plain callable: not transport.EventSink, the bus Protocol)
EmitEvent = Callable[[AnyEvent], None]

#: Capture seconds before a capture-loss window in which a stream still counts as live: a stream
#: whose packets were all dropped looks idle, but it was live while the capture lost them.
CAPTURE_LOSS_SLACK_S = 2.0
_KEEPALIVES = (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00", b"jaK\n")
#: What a keep-alive is made of (RFC 5626 CRLFs, and the spaces and NULs some phones send instead)
_BLANK_BYTES = b" \t\r\n\x00"


class Collector:
    """One capture's collector: feed it frames, ``finish()`` at the end; counters say what it saw."""

    def __init__(
        self,
        emit: EmitEvent,
        config: CollectorConfig | None = None,
        *,
        on_tick: Callable[[float], None] | None = None,
        on_failure: FailureSink | None = None,
        fatal: tuple[type[Exception], ...] = (),
    ) -> None:
        self.config = config or CollectorConfig()
        self.decoder = FrameDecoder()
        self.media = MediaRegistry(self.config.max_media_bindings)
        self.errors: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        #: A frame or chunk our own code fails on is counted in ``errors``, logged and passed on
        #: (``on_failure``); exceptions of the ``fatal`` types (the sink is gone) still end the run.
        self.guard = FrameGuard(self.errors, on_failure, fatal)
        self.frames = 0
        self.bytes = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.staged = StagedPackets()
        self.signalling = Signalling(
            emit, self.media, self.config, errors=self.errors, counters=self.counters, dropped=self.dropped
        )
        self.flow_table = MediaFlowTable(
            emit,
            self.config,
            self.media,
            self.signalling.ended,
            self.guard,
            errors=self.errors,
            skipped=self.skipped,
            dropped=self.dropped,
            counters=self.counters,
            on_tick=on_tick,
        )
        #: With several processes on one capture: the media flows this one analyses (None: all).
        #: Every process still keeps every flow's cheap timing (last packet, last report) and its
        #: SSRCs (ghosts for the others'), so it decides exactly as one collector does when to
        #: hand packets over, report (interval ticks, quiet probes) and close flows: a stream's
        #: vectorised statistics depend on where its packets are split into drains (drain_columns
        #: rounds per batch), so only the same schedule gives the same floats (``flow_shard``).
        self.shard: FlowShard | None = None
        #: Number of the frame the chunk loop is feeding: the order of what that frame emits.
        self.at_frame = 0

    # -- input ---------------------------------------------------------------

    def feed(self, frame: Frame) -> None:
        """One frame; if our code fails on it, the failure is counted (FrameGuard) and the next goes on."""
        try:
            self._feed(frame, udp_flow_key(frame.linktype, frame.data))
        except Exception as exc:  # the per-frame guard, see frame_guard
            self.guard.frame_failed(exc, frame)

    def feed_keyed(self, frame: Frame, fast: tuple[bytes, int] | None) -> None:
        """:meth:`feed` with the frame's ``udp_flow_key`` already read (the chunk path reads it too)."""
        try:
            self._feed(frame, fast)
        except Exception as exc:  # the per-frame guard, see frame_guard
            self.guard.frame_failed(exc, frame)

    def _feed(self, frame: Frame, fast: tuple[bytes, int] | None) -> None:
        ts = frame.ts
        self.frames += 1
        self.bytes += frame.orig_len
        if self.first_ts is None:
            self.first_ts = ts
        self.last_ts = ts
        table = self.flow_table
        if ts >= table.next_tick:
            table.tick(ts)
        if self.media.generation != table.fast_generation:
            table.sync_fast()
        data = frame.data
        if fast is not None:
            flow = table.fast.get(fast[0])
            if flow is not None:
                if flow.binding is None or not flow.binding.is_rtcp:
                    table.on_rtp(flow, ts, frame.number, data, fast[1])
                else:
                    table.on_media(flow, ts, frame.number, data[fast[1] :])
                return
            datagram = udp_payload(frame, *fast)
            if datagram is not None:
                flow = self._on_payload(datagram)
                if flow is not None:
                    table.fast[fast[0]] = flow
                return
        for payload in self.decoder.decode(frame):
            flow = self._on_payload(payload)
            if flow is not None and fast is not None and payload.transport == "udp":
                table.fast[fast[0]] = flow

    def run(self, frames: Iterable[Frame]) -> None:
        """Feed every frame; the same result as calling :meth:`feed` on each, only faster.

        A source offering ``record_batches()`` (a pcap or pcapng CaptureFile,
        a live capture) is read chunk by chunk with numpy (``chunk_path``);
        any other iterable of frames takes the per-frame loop (``frame_path``),
        which handles known RTP inline. Both hand every other frame to
        :meth:`feed`, in order.
        """
        bulk = getattr(frames, "record_batches", None)
        batches: Iterator[RecordBatch] | None = bulk() if callable(bulk) else None
        if batches is not None:
            try:
                for batch in batches:
                    self._run_batch_guarded(batch)
            finally:
                self.staged.hand_over()
            return
        remaining = iter(frames)
        failed: Frame | None = None
        while True:
            try:
                feed_frames(self, remaining)
                return
            except Exception as exc:  # the per-frame guard: go on with the next frame
                failed = frames_failed(self, exc, failed)
                if failed is None:  # the source itself raised: nothing more to read from it
                    return

    def _run_batch_guarded(self, batch: RecordBatch) -> None:
        """``chunk_path.feed_chunk``; if it fails, the records it had not taken go through :meth:`feed`.

        Zero cost while nothing fails (a try block is free in CPython 3.11); the recovery
        (``chunk_path.recover_chunk``) reads where it stopped from its :class:`ChunkProgress`.
        """
        at = ChunkProgress()
        try:
            feed_chunk(self, batch, at)
        except Exception as exc:  # the per-chunk guard, see frame_guard
            recover_chunk(self, exc, batch, at)

    def finish(self) -> None:
        """End of input: every stream gets its final report."""
        self.flow_table.finish()

    # -- classification ------------------------------------------------------

    def _on_payload(self, p: Payload) -> MediaFlow | None:
        """Route one transport payload; returns its media flow when it is RTP/RTCP."""
        if p.transport != "udp":
            self.signalling.on_sip(p)
            return None
        data = p.data
        if data[:1] in _BLANK_BYTES and not data.strip(_BLANK_BYTES):
            # RFC 5626 CRLF keep-alives, and the whitespace/NUL pings some phones send instead.
            self.skipped["sip.keepalive"] += 1
            return None
        binding = self.media.lookup(p.src_ip, p.src_port, p.dst_ip, p.dst_port)
        if binding is not None:
            flow = self.flow_table.flow_of(p, binding, self.at_frame, self.shard)
            if p.cut and not binding.is_rtcp:
                return self.flow_table.on_snapped_rtp(flow, p)
            self.flow_table.on_media(flow, p.ts, p.frame, data)
            return flow
        if (p.dst_port in MGCP_PORTS or p.src_port in MGCP_PORTS) and self.signalling.on_mgcp(p):
            return None
        if looks_like_sip(data) or (
            (p.dst_port in self.config.sip_ports or p.src_port in self.config.sip_ports)
            and data not in _KEEPALIVES
            and not looks_like_rtp(data)
        ):
            self.signalling.on_sip(p)
            return None
        if data in _KEEPALIVES:
            self.skipped["sip.keepalive"] += 1
            return None
        if self.config.heuristic_rtp and looks_like_rtp(data):
            flow = self.flow_table.flow_of(p, None, self.at_frame, self.shard)
            if p.cut:
                return self.flow_table.on_snapped_rtp(flow, p)
            self.flow_table.on_media(flow, p.ts, p.frame, data)
            return flow
        self.skipped["rtp.zrtp" if is_zrtp(data) else "udp.unclassified"] += 1
        return None

    def flow_inserted(self, src_ip: str, src_port: int, dst_ip: str, dst_port: int) -> int:
        """``at_frame`` when this flow entered the flow table: its place in the table's order."""
        return self.flow_table.flows[(src_ip, src_port, dst_ip, dst_port)].inserted

    # -- reporting -------------------------------------------------------------

    def all_errors(self) -> Counter[str]:
        return self.errors + self.decoder.errors

    def all_skipped(self) -> Counter[str]:
        return self.skipped + self.decoder.skipped

    def all_dropped(self) -> Counter[str]:
        return self.dropped + self.decoder.dropped + self.media.dropped

    def note_capture_loss(
        self, ts: float, dropped: int, reason: str = "capture.kernel", since: float | None = None
    ) -> None:
        """The capture (not the network) lost ``dropped`` packets between ``since`` and ``ts``.

        A live source calls this, in order with its frames, when the kernel
        ring or its own queue dropped packets. Those packets were on the wire,
        so a stream that misses them shows loss the network did not cause:
        every stream live in that window (plus a slack, since a stream whose
        packets were all dropped looks idle) is marked ``unreliable``, which
        the detector's media rules respect, and the drops are counted under
        ``reason`` in ``dropped`` so reports show them.
        """
        self.dropped[reason] += dropped
        self.staged.hand_over()  # staged packets first: every flow's last arrival is then exact
        self.flow_table.mark_unreliable((ts if since is None else min(since, ts)) - CAPTURE_LOSS_SLACK_S)
