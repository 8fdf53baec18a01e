"""RTP streams and their RTCP reports as time-ordered frames.

A stream is described by a plan (who, codec, when, how impaired) and turned
into frames lazily, so the load scenario never holds a stream in memory. The
RTCP reports are computed from the same arrival schedule the RTP frames
come from, so the receiver reports agree with what the capture shows.
"""

import bisect
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from callqual.simulator.impairments import JitterSpec, LossSpec, arrival_offsets, loss_mask
from callqual.simulator.pcap_writer import TimedFrame, UdpFlow
from callqual.simulator.rtp import (
    DTMF_EVENTS,
    RTP_VERSION_BYTE,
    TELEPHONE_EVENT_PT,
    Codec,
    ReportBlock,
    ntp_middle32,
    payload_pool,
    rtcp_compound,
    rtp_header,
    telephone_event,
)

PTIME_US = 20_000
RTCP_INTERVAL_US = 5_000_000
#: DTMF layout in 20 ms slots: 5 event packets (100 ms tone), 3 end-of-event copies, 5 slots of audio.
_DTMF_TONE_SLOTS = 5
_DTMF_END_COPIES = 3
_DTMF_GAP_SLOTS = 5

_RTP_HEADER = struct.Struct(">BBHII")


@dataclass(slots=True)
class StreamPlan:
    """One direction of RTP: ``count`` packets sent every 20 ms from ``start_us`` (capture-time units)."""

    flow: UdpFlow
    codec: Codec
    ssrc: int
    seq0: int
    ts0: int
    start_us: int
    count: int
    seed: str
    loss: LossSpec = field(default_factory=LossSpec)
    jitter: JitterSpec = field(default_factory=JitterSpec)
    dtmf: str = ""
    dtmf_start_slot: int = 100
    #: the 20 ms slot each packet is sent in, when silence suppression leaves gaps (see ``talkspurts``);
    #: empty: packet i in slot i
    slots: tuple[int, ...] = ()

    @property
    def impaired(self) -> bool:
        return self.loss.active or self.jitter.std_ms > 0

    def slot(self, index: int) -> int:
        """The 20 ms slot (send time and RTP timestamp step) of packet ``index``."""
        return self.slots[index] if self.slots else index

    def schedule(self) -> Iterator[tuple[int, int]]:
        """(capture time, packet index) of every packet that reaches the capture point, in capture order."""
        start, count, slot = self.start_us, self.count, self.slot
        if not self.impaired:
            return ((start + slot(i) * PTIME_US, i) for i in range(count))
        rng = random.Random(self.seed + "/impair")
        lost = loss_mask(self.loss, count, rng)
        offsets = arrival_offsets(self.jitter, count, PTIME_US, rng)
        arrivals = [(start + slot(i) * PTIME_US + offsets[i], i) for i in range(count) if not lost[i]]
        if self.jitter.reorder:
            arrivals.sort()
        return iter(arrivals)

    def sent_by(self, t_us: int) -> int:
        """Packets sent up to capture time ``t_us`` (what an SR's sender packet count says)."""
        elapsed = (t_us - self.start_us) // PTIME_US + 1
        if self.slots:
            return bisect.bisect_left(self.slots, elapsed)
        return min(max(elapsed, 0), self.count)

    def captured(self) -> int:
        if not self.impaired:
            return self.count
        return sum(1 for _ in self.schedule())

    def rfc3550_jitter_ms(self) -> tuple[float, float]:
        """(mean, max) of the RFC 3550 interarrival jitter over the captured packets, in capture order.

        What an analyser computes from the capture; zero when no jitter was
        injected (loss alone leaves the transit time constant).
        """
        if self.jitter.std_ms <= 0:
            return 0.0, 0.0
        jitter = total = peak = 0.0
        last_transit: float | None = None
        n = 0
        for arrival, index in self.schedule():
            transit = arrival / 1000.0 - self.slot(index) * PTIME_US / 1000.0
            if last_transit is not None:
                jitter += (abs(transit - last_transit) - jitter) / 16.0
            last_transit = transit
            total += jitter
            peak = max(peak, jitter)
            n += 1
        # Averaged over the packets after the first, as Wireshark's "Mean Jitter" is.
        return (total / (n - 1) if n > 1 else 0.0), peak

    def _dtmf_slots(self) -> dict[int, bytes]:
        """Packet index -> telephone-event packet (header included) for the DTMF digits."""
        slots: dict[int, bytes] = {}
        slot = self.dtmf_start_slot
        step = self.codec.samples_per_packet
        for digit in self.dtmf:
            event = DTMF_EVENTS[digit]
            event_ts = self.ts0 + slot * step
            for k in range(_DTMF_TONE_SLOTS + _DTMF_END_COPIES):
                end = k >= _DTMF_TONE_SLOTS
                duration = step * min(k + 1, _DTMF_TONE_SLOTS)
                header = rtp_header(TELEPHONE_EVENT_PT, self.seq0 + slot, event_ts, self.ssrc, marker=k == 0)
                slots[slot] = header + telephone_event(event, end=end, volume=10, duration=duration)
                slot += 1
            slot += _DTMF_GAP_SLOTS
        return slots

    def frames(self, source: int) -> Iterator[TimedFrame]:
        """The stream's frames; the inner loop is one struct call, one join and one tuple per packet."""
        pool = payload_pool(self.codec, random.Random(self.seed + "/payload"))
        pool_mask = len(pool) - 1
        pack = _RTP_HEADER.pack
        sizes = {len(payload) for payload in pool}
        frame = (
            self.flow.fixed_length_framer(_RTP_HEADER.size + sizes.pop())
            if len(sizes) == 1
            else self.flow.frame
        )
        pt, seq0, ts0, ssrc = self.codec.payload_type, self.seq0, self.ts0, self.ssrc
        step = self.codec.samples_per_packet
        dtmf = self._dtmf_slots() if self.dtmf else {}
        slot = self.slot
        for arrival, i in self.schedule():
            if i in dtmf:
                yield arrival, source, i, self.flow.frame(dtmf[i])
                continue
            # RFC 3551 4.1: the marker starts a talkspurt (the first packet, after DTMF or silence).
            talkspurt = i == 0 or (i - 1) in dtmf or slot(i) != slot(i - 1) + 1
            marker = 0x80 if talkspurt else 0
            header = pack(
                RTP_VERSION_BYTE, marker | pt, (seq0 + i) & 0xFFFF, (ts0 + slot(i) * step) & 0xFFFFFFFF, ssrc
            )
            yield arrival, source, i, frame(header + pool[i & pool_mask])


@dataclass(slots=True)
class _Reception:
    """RFC 3550 A.3/A.8 receiver state, fed packets in capture order."""

    clock_rate: int
    received: int = 0
    max_index: int = -1
    jitter: float = 0.0
    last_transit: int | None = None
    expected_prior: int = 0
    received_prior: int = 0

    def feed(self, arrival_us: int, index: int, slot: int, step: int) -> None:
        self.received += 1
        self.max_index = max(self.max_index, index)
        transit = arrival_us * self.clock_rate // 1_000_000 - slot * step
        if self.last_transit is not None:
            d = abs(transit - self.last_transit)
            self.jitter += (d - self.jitter) / 16.0
        self.last_transit = transit

    def block(self, plan: StreamPlan, lsr: int, dlsr: int) -> ReportBlock:
        expected = self.max_index + 1
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = (
            0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        )
        return ReportBlock(
            ssrc=plan.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=max(expected - self.received, 0),
            highest_seq=plan.seq0 + self.max_index,
            jitter=int(self.jitter),
            lsr=lsr,
            dlsr=dlsr,
        )


@dataclass(slots=True)
class RtcpSide:
    """One party's RTCP: what it sends (``sending``), what it receives (``receiving``) and where to."""

    flow: UdpFlow
    ssrc: int
    cname: str
    phase_us: int
    sending: StreamPlan | None
    receiving: StreamPlan | None


def rtcp_frames(sides: list[RtcpSide], end_us: int, source: int, path_delay_us: int) -> list[TimedFrame]:
    """Every RTCP compound packet of a call, SR while a side sends RTP, RR otherwise.

    A side's SR reaches the other side ``path_delay_us`` later, which is what
    the other side's LSR/DLSR refer to, so RTT computed from the capture is
    twice the path delay.
    """
    out: list[TimedFrame] = []
    # When each side's SRs are sent (needed for the other side's LSR/DLSR).
    sr_times: list[list[int]] = []
    for side in sides:
        times = list(range(side.phase_us, end_us, RTCP_INTERVAL_US))
        sr_times.append(times if side.sending is not None else [])
    for idx, side in enumerate(sides):
        other_srs = sr_times[1 - idx] if len(sides) == 2 else []
        reception = _Reception(side.receiving.codec.clock_rate) if side.receiving else None
        arrivals = side.receiving.schedule() if side.receiving else iter(())
        pending = next(arrivals, None)
        for n, t in enumerate(range(side.phase_us, end_us, RTCP_INTERVAL_US)):
            blocks: list[ReportBlock] = []
            if side.receiving is not None and reception is not None:
                step = side.receiving.codec.samples_per_packet
                while pending is not None and pending[0] <= t:
                    reception.feed(pending[0], pending[1], side.receiving.slot(pending[1]), step)
                    pending = next(arrivals, None)
                if reception.received:
                    heard = [s + path_delay_us for s in other_srs if s + path_delay_us <= t]
                    lsr = ntp_middle32(heard[-1] - path_delay_us) if heard else 0
                    dlsr = (t - heard[-1]) * 65536 // 1_000_000 if heard else 0
                    blocks.append(reception.block(side.receiving, lsr, dlsr))
            sender = None
            plan = side.sending
            if plan is not None:
                sent = plan.sent_by(t)
                rtp_ts = plan.ts0 + (t - plan.start_us) * plan.codec.clock_rate // 1_000_000
                octets = sent * plan.codec.payload_bytes
                sender = (t, rtp_ts, sent, octets)
            payload = rtcp_compound(side.ssrc, side.cname, blocks, sender=sender)
            out.append((t, source + idx, n, side.flow.frame(payload)))
    # Each side is in order; the merge downstream needs the two interleaved.
    out.sort()
    return out


def talkspurts(total_slots: int, share: float, rng: random.Random) -> tuple[int, ...]:
    """The slots a silence-suppressing sender fills: talkspurts of 0.2-1 s, ``share`` of ``total_slots``.

    Silences between them are drawn so the active share comes out at
    ``share`` on average; the last talkspurt is cut at ``total_slots``.
    Sequence numbers stay contiguous and timestamps jump over the silence
    (RFC 3551 4.1), so no analyser should count the gaps as loss.
    """
    slots: list[int] = []
    slot = 0
    while slot < total_slots:
        spurt = rng.randint(10, 50)
        slots.extend(range(slot, min(slot + spurt, total_slots)))
        slot += spurt + round(spurt * (1.0 - share) / share * rng.uniform(0.5, 1.5))
    return tuple(slots)
