"""The collector's media flows: which UDP flows carry RTP/RTCP, their streams, and when they report.

Every media packet lands in a :class:`MediaFlow` of this table (made from
the SDP binding of its endpoints, or by the RTP heuristic); RTP goes to the
flow's stream of its SSRC, RTCP becomes events. ``fast`` maps the flow key of
plain UDP frames (``udp_flow_key``) to their flow, for the per-frame and
chunk paths. Once a capture second (:meth:`MediaFlowTable.tick`) idle and
ended flows close with a final report, live ones report every
``report_interval_s``, and calls flowing one way are probed in between
(``quiet_probe``). Bounded by ``max_streams``; time is capture time.
"""

import struct
from collections import Counter
from collections.abc import Callable, Mapping

from callqual.collector.config import CollectorConfig
from callqual.collector.frame_guard import FrameGuard
from callqual.collector.media.flow_shard import FlowShard
from callqual.collector.media.media_flow import MediaFlow
from callqual.collector.media.media_registry import MediaBinding, MediaRegistry
from callqual.collector.media.quiet_probe import probed_flows
from callqual.collector.media.rtcp import RtcpParseError, rtcp_events
from callqual.collector.media.rtp_columns import drain_columns
from callqual.collector.media.rtp_header import is_zrtp, parse_rtp
from callqual.collector.media.rtp_stream import PENDING_LIMIT, RtpStream
from callqual.collector.packet import Payload
from callqual.schemas import AnyEvent

__all__ = ["FlowKey", "MediaFlowTable", "TableStamp", "only_additions"]

#: A media flow's UDP 4-tuple: source address and port, destination address and port.
FlowKey = tuple[str, int, str, int]

#: MediaFlowTable.stamp(): fast-table removals, flows ever made, flows, fast-table entries, streams
#: (with ghosts). A plain tuple: the chunk loop takes one before and after every frame it feeds.
TableStamp = tuple[int, int, int, int, int]

_RTP_FIXED = struct.Struct("!BBHII").unpack_from

#: Capture seconds between scans of the stream table for idle streams.
_TICK_S = 1.0


def only_additions(before: TableStamp, after: TableStamp) -> bool:
    """Between the two stamps flows and streams were only made: no fast entry, flow or stream left.

    Then every look-up that succeeded before still holds (see chunk_path).
    """
    removed_before, made_before, flows_before, _, streams_before = before
    removed_after, made_after, flows_after, _, streams_after = after
    return (
        removed_after == removed_before
        and flows_after - flows_before == made_after - made_before
        and streams_after >= streams_before
    )


class MediaFlowTable:
    """The media flows by 4-tuple, the fast table over them, and their report schedule."""

    def __init__(
        self,
        emit: Callable[[AnyEvent], None],
        config: CollectorConfig,
        media: MediaRegistry,
        call_ends: Mapping[str, float],
        guard: FrameGuard,
        *,
        errors: Counter[str],
        skipped: Counter[str],
        dropped: Counter[str],
        counters: Counter[str],
        on_tick: Callable[[float], None] | None = None,
    ) -> None:
        self._emit = emit
        self.config = config
        self.media = media
        #: Call-ID -> capture time its signalling ended (Signalling.ended): its flows close soon after
        self._call_ends = call_ends
        self._guard = guard
        self.errors = errors
        self.skipped = skipped
        self.dropped = dropped
        self.counters = counters
        #: Told each capture second's tick once its reports are out (a batch of interval reports is
        #: complete then: what a transport's watermark tells a detector downstream).
        self._on_tick = on_tick
        self.flows: dict[FlowKey, MediaFlow] = {}
        #: udp_flow_key() bytes -> flow, for the per-frame and chunk paths; entries leave it in
        #: place (those paths hold a reference to the dict)
        self.fast: dict[bytes, MediaFlow] = {}
        #: MediaRegistry.generation the fast table was last checked against (sync_fast)
        self.fast_generation = -1
        #: Bumped whenever entries leave the fast table: look-ups made before may be stale.
        self.fast_removed = 0
        self.n_streams = 0
        #: SSRCs of other shards' flows (MediaFlow.ghosts): with n_streams, one collector's count
        self.n_ghosts = 0
        #: capture time of the next tick, and of the next interval report
        self.next_tick = float("-inf")
        self._next_report = float("-inf")

    def sync_fast(self) -> None:
        """Forget the fast-path entries of flows whose endpoints a new SDP (or an eviction) re-bound.

        Only those: a flow's binding comes from its own two endpoints
        (MediaRegistry.lookup), so every other flow still resolves as
        before. Clearing the whole table on each SDP would send the next
        packet of every flow of every call down the slow path.
        """
        self.fast_generation = self.media.generation
        changed = self.media.take_changes()
        stale = [
            key
            for key, flow in self.fast.items()
            if (flow.dst_ip, flow.dst_port) in changed or (flow.src_ip, flow.src_port) in changed
        ]
        for key in stale:
            del self.fast[key]
        if stale:
            self.fast_removed += 1

    def stamp(self) -> TableStamp:
        """Changes whenever a flow or stream is made or dropped, or the fast table loses or gains entries."""
        return (
            self.fast_removed,
            MediaFlow.created,
            len(self.flows),
            len(self.fast),
            self.n_streams + self.n_ghosts,
        )

    def on_snapped_rtp(self, flow: MediaFlow, p: Payload) -> MediaFlow:
        """An RTP datagram the snaplen cut: zero-filled to its length on the wire if its header is whole.

        Stream statistics read the header and the payload's length, not its
        bytes (telephone events, the one payload read, sit in its first four),
        so the packet counts as sent, with its payload bytes as on the wire.
        A header cut short cannot be read: counted, as tshark marks it malformed.
        """
        data = p.data
        need = 12 + 4 * (data[0] & 0x0F) if data else 12
        if len(data) >= need and data[0] & 0x10:  # a header extension: its length word too
            need += 4 + 4 * int.from_bytes(data[need + 2 : need + 4]) if len(data) >= need + 4 else 4
        if len(data) < need:
            self.errors["rtp.snapped_header"] += 1
            return flow
        self.on_media(flow, p.ts, p.frame, data + bytes(p.cut))
        return flow

    def flow_of(
        self, p: Payload, binding: MediaBinding | None, at_frame: int, shard: FlowShard | None
    ) -> MediaFlow:
        """The media flow of ``p``: made, or re-bound, as its endpoints' binding says."""
        key = (p.src_ip, p.src_port, p.dst_ip, p.dst_port)
        flow = self.flows.get(key)
        if flow is None or (binding is not None and flow.binding is not binding):
            old = flow.binding if flow is not None else None
            if (
                flow is not None
                and old is not None
                and binding is not None
                and (old.call_id, old.is_rtcp) == (binding.call_id, binding.is_rtcp)
            ):
                # The same call re-bound the endpoint (a re-INVITE, back from T.38 fax...): like
                # Wireshark, whose streams never split, its streams go on with the new payload map.
                flow.binding = binding
                for stream in flow.streams.values():
                    stream.use_rtpmap(binding.rtpmap)
                return flow
            if flow is not None:
                # A new SDP re-bound this endpoint (a new call reusing the port): the old
                # streams belong to the old call and end here.
                self._close_flow(key, flow)
            flow = MediaFlow(binding, p.src_ip, p.src_port, p.dst_ip, p.dst_port)
            flow.rtp = binding is None or not binding.is_rtcp
            flow.inserted = at_frame
            if shard is not None:
                # RTCP only becomes events, which share 0 emits: the other shares skip it.
                flow.foreign = not shard.owns(*key) if flow.rtp else shard.index != 0
            self.flows[key] = flow
        return flow

    def on_media(self, flow: MediaFlow, ts: float, frame: int, data: bytes) -> None:
        flow.last_ts = ts
        binding = flow.binding
        if binding is not None and binding.is_rtcp:
            if flow.foreign:
                return
            try:
                events = rtcp_events(
                    data,
                    ts,
                    frame,
                    flow.src_ip,
                    flow.src_port,
                    flow.dst_ip,
                    flow.dst_port,
                    binding.call_id,
                    None,
                )
            except RtcpParseError as exc:
                self.errors[exc.reason] += 1
                return
            self.counters["rtcp.packets"] += 1
            for ev in events:
                self._emit(ev)
            return
        self.on_rtp(flow, ts, frame, data, 0)

    def on_rtp(self, flow: MediaFlow, ts: float, frame: int, buf: bytes, start: int) -> None:
        """One RTP packet whose header starts at ``buf[start]``: the per-packet hot path."""
        flow.last_ts = ts
        if len(buf) - start >= 12 and buf[start] == 0x80:
            # The usual header: version 2, no padding, no extension, no CSRC.
            _, b1, seq, rtp_ts, ssrc = _RTP_FIXED(buf, start)
            stream = flow.streams.get(ssrc)
            if stream is not None:
                pending = stream.pending
                pending.append(
                    (ts, seq, rtp_ts, b1 & 0x7F, b1 > 0x7F, len(buf) - start - 12, buf, start + 12)
                )
                if len(pending) >= PENDING_LIMIT:
                    stream.drain()
                return
            if ssrc in flow.ghosts:
                return
        packet = buf[start:] if start else buf
        hdr = parse_rtp(packet)
        if hdr is None:
            # ZRTP keys the SRTP that follows on the same port (RFC 6189): expected, not an error.
            if is_zrtp(packet):
                self.skipped["rtp.zrtp"] += 1
            else:
                self.errors["rtp.bad_header"] += 1
            return
        pt, marker, seq, rtp_ts, ssrc, offset, payload_len = hdr
        stream = flow.streams.get(ssrc)
        if stream is None:
            full = self.n_streams + self.n_ghosts >= self.config.max_streams
            if flow.foreign:
                if not full and ssrc not in flow.ghosts:  # (a drop is counted by the owner)
                    flow.ghosts.add(ssrc)
                    self.n_ghosts += 1
                return
            if full:
                self.dropped["rtp.stream_table_full"] += 1
                return
            stream = RtpStream(
                flow.src_ip,
                flow.src_port,
                flow.dst_ip,
                flow.dst_port,
                ssrc,
                frame,
                flow.binding.rtpmap if flow.binding is not None else {},
            )
            flow.streams[ssrc] = stream
            self.n_streams += 1
        stream.pending.append((ts, seq, rtp_ts, pt, marker, payload_len, buf, start + offset))
        if len(stream.pending) >= PENDING_LIMIT:
            stream.drain()

    def _call_of(self, flow: MediaFlow) -> str | None:
        return flow.binding.call_id if flow.binding is not None else None

    def _forget_fast(self, flow: MediaFlow) -> None:
        """Drop a flow's fast-path entries in place (the frame and chunk paths hold the dict)."""
        stale = [k for k, v in self.fast.items() if v is flow]
        for key in stale:
            del self.fast[key]
        if stale:
            self.fast_removed += 1

    def _close_flow(self, key: FlowKey, flow: MediaFlow) -> None:
        for stream in flow.streams.values():
            self._emit(stream.report(self._call_of(flow), final=True))
        self.n_streams -= len(flow.streams)
        self.n_ghosts -= len(flow.ghosts)
        del self.flows[key]
        self._forget_fast(flow)

    def tick(self, now: float) -> None:
        """Once a capture second: finish idle streams, publish interval reports."""
        self.next_tick = now + _TICK_S
        report_due = now >= self._next_report
        if report_due:
            self._next_report = now + self.config.report_interval_s
        grace = self.config.ended_call_grace_s
        idle_limit = self.config.stream_idle_timeout_s
        if report_due:
            # Every stream about to report (or close) drains in one vectorised pass.
            drain_columns(stream for flow in self.flows.values() for stream in flow.streams.values())
        for key, flow in list(self.flows.items()):
            call_id = self._call_of(flow)
            ended = self._call_ends.get(call_id) if call_id is not None else None
            idle = now - flow.last_ts
            if not (flow.streams or flow.ghosts):
                # RTCP, or datagrams that were not RTP: nothing to report, just forget the flow.
                if (ended is not None and idle >= grace) or idle >= idle_limit:
                    del self.flows[key]
                    self._forget_fast(flow)
                continue
            if (ended is not None and now - ended >= grace and idle >= grace) or idle >= idle_limit:
                self._close_flow(key, flow)
            elif report_due and flow.last_ts > max(
                now - self.config.report_interval_s, flow.reported_last_ts
            ):
                # (a flow a quiet probe reported since its last packet has no news: no second row)
                self._report(flow, call_id, now)
        if not report_due and self.config.quiet_report_interval_s > 0:
            self._probe_quiet_calls(now)
        if self._on_tick is not None:
            self._on_tick(now)

    def _report(self, flow: MediaFlow, call_id: str | None, now: float) -> None:
        flow.reported_ts, flow.reported_last_ts = now, flow.last_ts
        for stream in flow.streams.values():
            self._emit(stream.report(call_id, final=False))

    def _probe_quiet_calls(self, now: float) -> None:
        """Reports calls whose media flows one way only, between interval ticks (``quiet_probe``)."""
        by_call: dict[str, list[MediaFlow]] = {}
        for flow in self.flows.values():
            call_id = self._call_of(flow)
            if (flow.streams or flow.ghosts) and call_id is not None and call_id not in self._call_ends:
                by_call.setdefault(call_id, []).append(flow)
        chosen = {id(flow) for flow in probed_flows(by_call, now, self.config.quiet_report_interval_s)}
        if not chosen:
            return
        # In flow-table order, as a full tick reports: the order sharded reports merge back in.
        probed = [flow for flow in self.flows.values() if id(flow) in chosen]
        # one vectorised pass over every probed stream's queued packets, as at a full tick
        drain_columns(stream for flow in probed for stream in flow.streams.values())
        for flow in probed:
            self.counters["rtp.quiet_probe_reports"] += len(flow.streams)
            self._report(flow, self._call_of(flow), now)

    def finish(self) -> None:
        """End of input: every stream gets its final report."""
        drain_columns(stream for flow in self.flows.values() for stream in flow.streams.values())
        for flow in self.flows.values():
            for stream in flow.streams.values():
                try:
                    self._emit(stream.report(self._call_of(flow), final=True))
                except Exception as exc:  # the other streams still get theirs
                    self._guard.failed(exc, stream.first_frame)
        self.flows.clear()
        self.fast.clear()
        self.fast_removed += 1
        self.n_streams = 0
        self.n_ghosts = 0

    def mark_unreliable(self, since: float) -> None:
        """Every stream of a flow with a packet since ``since`` missed packets the capture lost."""
        for flow in self.flows.values():
            if flow.last_ts >= since:
                for stream in flow.streams.values():
                    stream.unreliable = True
