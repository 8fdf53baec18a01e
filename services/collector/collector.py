"""The collector core: frames in, SIP message events and RTP/RTCP reports out.

Pure: a capture source (file or live) feeds :meth:`Collector.feed`, and events
go to an injected ``emit`` callable (the in-process detector, or a Kafka
producer). Time is the frames' capture time, never the wall clock.

Two paths per frame. The fast path recognises, with a few slices, a plain
Ethernet/IPv4/UDP frame of a flow already known to carry media, and hands the
RTP header straight to its stream: that is where nearly all packets of a VoIP
capture go. Everything else takes the full decoder (tunnels, VLANs, IPv6,
fragments, TCP reassembly), then SIP parsing or media handling.
"""

import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from callqual.collector.chunk_staging import STAGE_LIMIT, Chunk, StagedPackets, distinct_rows, rtp_heads
from callqual.collector.config import CollectorConfig
from callqual.collector.decode.fast_path import (
    ETH_IPV4_UDP_HEAD,
    ETH_IPV4_UDP_PAYLOAD,
    FIXED_IP_LINKTYPES,
    RTP_STREAM_KEY,
    ip_offsets,
    ipv4_udp_rtp,
    udp_flow_key,
    udp_payload,
)
from callqual.collector.decode.frame_decoder import FrameDecoder
from callqual.collector.frame_guard import FailureSink, FrameGuard, called_from, locals_of
from callqual.collector.media.flow_shard import FlowShard
from callqual.collector.media.flow_table import MediaFlowTable
from callqual.collector.media.media_flow import MediaFlow
from callqual.collector.media.media_registry import MediaRegistry
from callqual.collector.media.rtp_header import is_zrtp, looks_like_rtp
from callqual.collector.media.rtp_stream import PENDING_LIMIT
from callqual.collector.mgcp import MGCP_PORTS
from callqual.collector.packet import Frame, Payload, RecordBatch
from callqual.collector.signalling import Signalling
from callqual.collector.sip.message import looks_like_sip
from callqual.schemas import AnyEvent

EventSink = Callable[[AnyEvent], None]

_RTP_FIXED = struct.Struct("!BBHII").unpack_from

#: Capture seconds before a capture-loss window in which a stream still counts as live: a stream
#: whose packets were all dropped looks idle, but it was live while the capture lost them.
CAPTURE_LOSS_SLACK_S = 2.0
_KEEPALIVES = (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00", b"jaK\n")
#: What a keep-alive is made of (RFC 5626 CRLFs, and the spaces and NULs some phones send instead)
_BLANK_BYTES = b" \t\r\n\x00"


#: What the inline fast path of Collector._run_frames calls into (RtpStream.drain)
_INLINE_PATH_MODULES = "callqual.collector.media."


class Collector:
    def __init__(
        self,
        emit: EventSink,
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
        self._guard = FrameGuard(self.errors, on_failure, fatal)
        self.frames = 0
        self.bytes = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self._staged = StagedPackets()
        self.signalling = Signalling(
            emit, self.media, self.config, errors=self.errors, counters=self.counters, dropped=self.dropped
        )
        self.flow_table = MediaFlowTable(
            emit,
            self.config,
            self.media,
            self.signalling.ended,
            self._guard,
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
            self._guard.frame_failed(exc, frame)

    def _feed_keyed(self, frame: Frame, fast: tuple[bytes, int] | None) -> None:
        """:meth:`feed` with the frame's ``udp_flow_key`` already read (``_run_batch`` needs it too)."""
        try:
            self._feed(frame, fast)
        except Exception as exc:  # the per-frame guard, see frame_guard
            self._guard.frame_failed(exc, frame)

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
        a live capture) is read chunk by chunk with numpy (see
        :meth:`_run_batch`); any other iterable of frames takes the per-frame
        loop below.

        RTP of known flows in plain Ethernet/IPv4/UDP frames with the usual
        12-byte header is nearly every frame of a VoIP capture. For those this
        loop does the whole job inline (key slice, dict look-ups, one queue
        append) with everything it touches in local variables: a function call
        per packet costs more in CPython than the work itself. Every other
        frame, and every frame of a flow not yet known, goes through
        :meth:`feed`.
        """
        bulk = getattr(frames, "record_batches", None)
        batches: Iterator[RecordBatch] | None = bulk() if callable(bulk) else None
        if batches is not None:
            try:
                for batch in batches:
                    self._run_batch_guarded(batch)
            finally:
                self._staged.hand_over()
            return
        remaining = iter(frames)
        failed: Frame | None = None
        while True:
            try:
                self._run_frames(remaining)
                return
            except Exception as exc:  # the per-frame guard: go on with the next frame
                failed = self._frames_failed(exc, failed)
                if failed is None:  # the source itself raised: nothing more to read from it
                    return

    def _run_frames(self, frames: Iterator[Frame]) -> None:
        """The per-frame loop of :meth:`run` (see there); :meth:`feed` guards every frame it takes."""
        table = self.flow_table
        media = self.media
        fast = table.fast
        feed = self.feed
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
                            self.last_ts = ts
                            continue
            feed(frame)
        self.frames += frames_seen
        self.bytes += size

    def _frames_failed(self, exc: Exception, last: Frame | None) -> Frame | None:
        """:meth:`_run_frames` raised: count it, keep what it had counted; the frame it failed on.

        None when the source raised instead: the code below the loop is the source's, not
        the media code the inline path calls; or, for a source written in C, no frame yet or
        the one that failed last time again (a source that raises at every step must not keep
        the loop going).
        """
        seen = locals_of(exc, Collector._run_frames)
        self.frames += seen.get("frames_seen", 0)
        self.bytes += seen.get("size", 0)
        frame = seen.get("frame")
        below = called_from(exc, Collector._run_frames)
        by_source = below is not None and not below.startswith(_INLINE_PATH_MODULES)
        if by_source or not isinstance(frame, Frame) or frame is last:
            self._guard.failed(exc)
            return None
        self._guard.frame_failed(exc, frame)
        return frame

    def _run_batch_guarded(self, batch: RecordBatch) -> None:
        """:meth:`_run_batch`; if it fails, the records it had not taken go through :meth:`feed` one by one.

        Zero cost while nothing fails (a try block is free in CPython 3.11).
        Where it stopped is read from the failed call's own frame, so its
        loop carries no bookkeeping: records before ``cur`` were fed (and
        counted by feed) or are fast packets waiting in the chunk or staged.
        """
        try:
            self._run_batch(batch)
        except Exception as exc:  # the per-chunk guard, see frame_guard
            self._guard.batch_failed(exc, batch)
            seen = locals_of(exc, Collector._run_batch)
            done = int(seen.get("cur", 0))
            fast = done - int(seen.get("fed", 0))
            self.frames += fast
            self.bytes += int(batch.orig_len[:done].sum()) - int(seen.get("fed_bytes", 0))
            chunk = seen.get("chunk")
            try:
                if isinstance(chunk, Chunk):
                    self._staged.stage(chunk)
                self._staged.hand_over()
            except Exception as again:  # the staged packets cannot be given: drop them
                self._guard.batch_failed(again, batch)
                self.dropped["internal.staged_packets"] += self._staged.rows
                self._staged.clear()
            for i in range(done, len(batch)):
                try:
                    frame = batch.frame(i)
                except Exception as bad:  # a record the chunk cannot even give
                    self._guard.batch_failed(bad, batch)
                    continue
                self.feed(frame)

    def _resolve(self, chunk: Chunk, groups: Iterable[int], usable: np.ndarray) -> None:
        """Look up the stream and flow of each (flow key, SSRC) group the fast path may take, in place.

        ``usable[g]`` says whether group ``g`` has a stream. The chunk's uid
        column is derived from these look-ups, so it is dropped here, where
        they change: a stale one would stage packets for a stream it no
        longer names.
        """
        chunk.uids = None
        keys = chunk.keys
        streams = chunk.streams
        flows = chunk.flows
        fast = self.flow_table.fast
        fresh = self.media.generation == self.flow_table.fast_generation
        for g in groups:
            at = 16 * g
            flow = fast.get(keys[at : at + 12]) if fresh else None
            stream = None
            if flow is not None and flow.foreign:
                # Another shard's: usable where one collector's would be (a stream known by its
                # ghost), so the same frames are fed; stage() reads its rows past.
                ok = flow.rtp and int.from_bytes(keys[at + 12 : at + 16]) in flow.ghosts
                chunk.foreign |= ok
                usable[g] = ok
                streams[g] = None
                flows[g] = flow if ok else None
                continue
            if flow is not None and flow.rtp:
                stream = flow.streams.get(int.from_bytes(keys[at + 12 : at + 16]))
            streams[g] = stream
            flows[g] = flow if stream is not None else None
            usable[g] = stream is not None

    def _run_batch(self, batch: RecordBatch) -> None:
        """Feed one chunk of records: the result of :meth:`feed` on each, numpy doing the common case.

        The per-frame loop of :meth:`run` still spends a few microseconds of
        interpreter time on each RTP packet. Here the fast-path test, the
        stream key and the RTP header fields are read for the whole chunk
        with numpy, streams are looked up once per distinct (flow, SSRC) of
        the chunk, and fast packets are staged (:class:`StagedPackets`) and handed
        to their streams as columns (RtpStream.add_columns), one call per
        stream per capture second rather than per packet. Frames the fast
        path cannot take (signalling, RTCP, new flows, other encapsulations,
        the first frame of each capture second, which runs the timers) go
        through :meth:`feed` one by one, in order.

        Order is kept where it is observable. A fed frame can read or change
        only the streams of its own flow (the UDP 4-tuple udp_flow_key()
        names), except the first frame of a capture second (the timers
        report and close streams) and a frame udp_flow_key() cannot name
        (tunnels, fragments, IPv6): so the staged packets are handed to
        their streams before such a frame, or before a frame of a flow that
        has packets staged. Staged packets carry the stream they were looked
        up for, so later look-ups cannot redirect them. Look-ups are redone
        when a fed frame changed the flow or stream tables (:meth:`_stamp`):
        all of them (after handing over) after a removal, else only those of
        the fed frame's own flow key, since adding a flow or a stream cannot
        invalidate a look-up that succeeded, and a look-up left failed only
        sends packets down the (exact) slow path. Memory: one chunk's columns
        plus at most STAGE_LIMIT staged packets.
        """
        n = len(batch)
        if not n:
            return
        feed = self.feed
        feed_keyed = self._feed_keyed
        staged = self._staged
        table = self.flow_table
        if batch.linktype not in FIXED_IP_LINKTYPES:
            self._staged.hand_over()
            for i in range(n):
                self.at_frame = batch.first_number + i
                feed(batch.frame(i))
            return
        ts = batch.ts
        data = np.frombuffer(batch.buf, np.uint8)
        # Shift every record so that its IPv4 header lands where untagged Ethernet has it
        # (column 14): one fixed layout of columns whatever the link layer or VLAN tag.
        ip_at = ip_offsets(batch.linktype, data, batch.start, batch.caplen)
        shift = ip_at - 14
        origin = batch.start + shift
        usable_link = (ip_at >= 0) & (origin >= 0)
        heads = rtp_heads(data, np.where(usable_link, origin, batch.start))
        ip_caplen = batch.caplen - ip_at
        rows = np.flatnonzero(ipv4_udp_rtp(heads, ip_caplen) & usable_link)
        keys, inverse = distinct_rows(heads[rows[:, None], RTP_STREAM_KEY])
        n_groups = len(keys) // 16
        group = np.full(n, n_groups, dtype=np.int64)  # n_groups: not a fast-path frame at all
        group[rows] = inverse
        by_key: dict[bytes, list[int]] = {}
        for g in range(n_groups):
            by_key.setdefault(keys[16 * g : 16 * g + 12], []).append(g)
        chunk = Chunk(batch, heads, ip_caplen, group, keys, [None] * n_groups, [None] * n_groups)
        usable = np.zeros(n_groups + 1, dtype=bool)
        self._resolve(chunk, range(n_groups), usable)
        has_waiting = np.zeros(n_groups + 1, dtype=bool)
        #: group of each row as Python ints: a row outside every group (signalling...) is fed
        #: without the numpy search below, which costs more than a list look-up per row
        row_groups = group.tolist()
        fed = 0
        fed_bytes = 0
        cur = 0
        while cur < n:
            # The next frame the fast path cannot take, searched in growing windows with the
            # current look-ups and timer: typically a few hundred rows away.
            hi = cur
            width = 256
            while hi < n and row_groups[hi] != n_groups:
                take = usable[group[hi : hi + width]] & (ts[hi : hi + width] < table.next_tick)
                k = int(take.argmin())
                if not take[k]:
                    hi += k
                    break
                hi = min(n, hi + width)
                width *= 4
            if hi > cur:
                chunk.waiting.append((cur, hi))
                has_waiting[group[cur:hi]] = True
                self.last_ts = float(ts[hi - 1])
            if hi == n:
                break
            frame = batch.frame(hi)
            key = udp_flow_key(frame.linktype, frame.data)
            if (chunk.waiting or staged.seen) and (
                frame.ts >= table.next_tick
                or key is None
                or key[0] in staged.keys
                or any(has_waiting[g] for g in by_key.get(key[0], ()))
            ):
                staged.stage(chunk)
                has_waiting[:] = False
                self._staged.hand_over()
            before = table.stamp()
            self.at_frame = frame.number
            feed_keyed(frame, key)
            if self.media.generation != table.fast_generation:
                table.sync_fast()
            fed += 1
            fed_bytes += frame.orig_len
            cur = hi + 1
            after = table.stamp()
            if after != before:
                made = after[1] - before[1]
                if after[0] == before[0] and after[2] - before[2] == made and after[4] >= before[4]:
                    self._resolve(chunk, by_key.get(key[0], ()) if key else (), usable)
                else:
                    staged.stage(chunk)
                    has_waiting[:] = False
                    self._staged.hand_over()
                    chunk.streams[:] = [None] * n_groups
                    chunk.flows[:] = [None] * n_groups
                    usable[:] = False
                    if self.media.generation == table.fast_generation:
                        # Only groups whose flow key is in the fast table can resolve.
                        if len(table.fast) < n_groups:
                            candidates = [g for k in table.fast for g in by_key.get(k, ())]
                        else:
                            candidates = list(range(n_groups))
                        self._resolve(chunk, candidates, usable)
        staged.stage(chunk)
        if staged.seen >= STAGE_LIMIT:
            self._staged.hand_over()
        self.frames += n - fed
        self.bytes += int(batch.orig_len.sum()) - fed_bytes

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
        self._staged.hand_over()  # staged packets first: every flow's last arrival is then exact
        self.flow_table.mark_unreliable((ts if since is None else min(since, ts)) - CAPTURE_LOSS_SLACK_S)
