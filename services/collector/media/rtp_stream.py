"""Per-stream RTP statistics, computed exactly as ``tshark -z rtp,streams`` computes them.

Wireshark is the reference every VoIP engineer checks us against, so the
counters below reproduce its RTP analysis (ui/tap-rtp-analysis.c
``rtppacket_analyse`` and ui/rtp_stream.c / ui/cli/tap-rtp.c, Wireshark 4.0)
quirks included (the 4.0 branch: that is the tshark Debian 12 ships and
the tests compare against):

* *Lost* is ``expected - received`` with ``expected`` taken from the first
  and the **last received** sequence numbers plus counted wraps; duplicates
  therefore make it negative, and a reordered last packet shifts it.
* Delta and jitter are measured against the previous packet's arrival,
  even when it came out of order (later Wireshark releases skip packets
  whose timestamp went backwards; 4.0 does not, and a crafted reordering
  test shows tshark 4.0.17 taking the late packet's 10 ms delta); the
  *nominal* (RTP timestamp) side of the jitter moves only on packets with a
  known clock rate. So after an RFC 4733 event (clock 0) the
  next audio packet's expected arrival mixes the event's arrival with the
  last audio timestamp, which inflates jitter around DTMF -- that is what
  tshark 4.0.17 reports (rtp-pcap/SIP_DTMF2.pcap: mean 1.522 ms, max 15.767 ms)
  and what we reproduce.
* Jitter is RFC 3550 6.4.1 / A.8 (J += (|D| - J)/16) but in milliseconds, with
  the timestamp converted by ``clock_rate // 1000`` (an integer division in
  Wireshark's C, which matters for 44.1/11.025/22.05 kHz).
* min/mean/max statistics only take "regular" packets: not marker, not
  comfort noise, not just after comfort noise. The
  "mean" divides by the packets seen so far, not by the regular ones.
* min values are -1 when no regular packet ever contributed (Wireshark's
  sentinel, kept so the numbers compare one to one).

On top of that, and independent of Wireshark, the stream tracks an extended
sequence number (RFC 3550 A.1) to count real duplicates, reordered packets
and the loss pattern for the E-model's BurstR (ITU-T G.107 3.6 / G.113
Appendix I), plus RFC 4733 telephone events.

No I/O: the collector feeds parsed headers in, reports come out.
"""

from collections.abc import Iterable
from itertools import repeat
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt

from callqual.collector.media.payload_types import (
    CN_PAYLOAD_TYPES,
    codec_for,
    is_telephone_event,
    jitter_clock_rate,
)
from callqual.schemas import RtpStreamReport
from callqual.schemas.base import SCHEMA_VERSION

#: RFC 4733 3.2 table 1: DTMF event codes 0-15; others are reported as numbers.
_DTMF_NAMES: Final[tuple[str, ...]] = (
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "*",
    "#",
    "A",
    "B",
    "C",
    "D",
)

#: Upper bound on the received-packet map used for duplicates and BurstR: 2**21
#: packets is 11.6 h of 20 ms audio. Past it (or after a sequence jump that
#: would need it) only the Wireshark counters go on; the map is dropped so
#: a hostile or broken sender cannot make us allocate without limit.
_MAX_SEQ_MAP: Final[int] = 1 << 21

#: RFC 3550 A.1: sequence numbers are 16 bits; half the space decides the
#: direction of a wrap (packet-rtp.c ``calculate_extended_seqno``).
_SEQ_MOD: Final[int] = 0x10000
_SEQ_HALF: Final[int] = 0x8000
#: RTP timestamps are 32 bits; packet-rtp.c ``calculate_extended_timestamp``.
_TS_HIGH_MASK: Final[int] = ~0xFFFFFFFF
_TS_MOD: Final[int] = 0x100000000
_TS_HALF: Final[int] = 0x80000000
#: ui/tap-rtp-analysis.c: a backwards jump of more than this many sequence
#: numbers is taken as a wrap with the wrapping packets lost, not a very late
#: packet (Wireshark issue 5958).
_WRAP_GUESS: Final[int] = 0xFF00
#: Largest forward sequence gap (lost packets + 1) a clean column batch may contain: a loss burst,
#: counted by Wireshark as one sequence error; larger jumps take the packet loop.
_MAX_CLEAN_GAP: Final[int] = 1000


#: Queued packets per stream before they are applied in one batch (see RtpStream.drain):
#: large enough to amortise the batch set-up, small enough to bound the memory held.
PENDING_LIMIT: Final[int] = 64

#: (capture ts, seq, RTP ts, payload type, marker, payload length, buffer, payload offset)
PendingPacket = tuple[float, int, int, int, bool, int, bytes | None, int]

#: Queued packets per stream, in column form (see RtpStream.add_columns), before they are
#: applied: 512 packets are 10 s of 20 ms audio, so a stream of a normal call is applied at
#: every interval report instead (5 s); the cap bounds what a high-rate stream holds, at
#: 48 bytes a packet (one float64 and five int64 columns), copies that share no chunk buffer.
COLUMN_LIMIT: Final[int] = 512

#: Column order of the int64 matrix handed to RtpStream.add_columns.
COL_SEQ: Final[int] = 0
COL_RTP_TS: Final[int] = 1
#: The second byte of the RTP header: marker bit and payload type.
COL_B1: Final[int] = 2
COL_PAYLOAD_LEN: Final[int] = 3
#: First payload byte (the RFC 4733 event code); meaningless when the payload is empty.
COL_FIRST_BYTE: Final[int] = 4
N_COLUMNS: Final[int] = 5

FloatColumn = npt.NDArray[np.float64]
IntColumns = npt.NDArray[np.int64]
Index = npt.NDArray[np.int64]

#: byte i is i: a column's first payload byte replays through the tuple loop as
#: ``(buf, offset) = (_BYTE_VALUES, byte)`` without allocating a buffer per packet.
_BYTE_VALUES: Final[bytes] = bytes(range(256))


def event_name(code: int) -> str:
    """RFC 4733 3.2 digit for a DTMF event code, else the decimal code."""
    return _DTMF_NAMES[code] if 0 <= code < len(_DTMF_NAMES) else str(code)


class RtpStream:
    """One RTP stream: (src ip, src port, dst ip, dst port, SSRC), as Wireshark keys it."""

    __slots__ = (
        "_bitmap",
        "_clock_by_pt",
        "_col_count",
        "_col_ints",
        "_col_ts",
        "_cycles",
        "_delta_max",
        "_delta_mean",
        "_delta_min",
        "_dups",
        "_event_ts",
        "_events",
        "_ext_ts",
        "_first_ext",
        "_first_ts",
        "_hi_seq",
        "_jitter",
        "_jitter_max",
        "_jitter_mean",
        "_jitter_min",
        "_last_ts",
        "_nom_ts",  # RTP timestamp of the last packet with a known clock rate
        "_ooo",
        "_payload_bytes",
        "_pt",
        "_pts",
        "_seq_base",
        "_seq_errors",
        "_seq_num",
        "_seq_ts",  # extended RTP timestamp of the previous packet
        "_start_seq",
        "_stop_seq",
        "_time",
        "_total",
        "_under",
        "dst_ip",
        "dst_port",
        "first_frame",
        "pending",
        "problem",
        "rtpmap",
        "src_ip",
        "src_port",
        "ssrc",
        "uid",
        "unreliable",
    )

    #: Streams made so far, process-wide: the source of ``uid``.
    _made: ClassVar[int] = 0

    def __init__(  # noqa: PLR0917 - the collector's call shape, fixed by the design
        self,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        ssrc: int,
        first_frame: int,
        rtpmap: dict[int, str] | None = None,
    ) -> None:
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.ssrc = ssrc
        self.first_frame = first_frame
        RtpStream._made += 1
        #: Unique in the process: how the collector's chunk loop names a stream in numpy columns.
        self.uid = RtpStream._made
        self.rtpmap: dict[int, str] = dict(rtpmap) if rtpmap else {}
        #: Set by the collector when the capture itself dropped packets while
        #: this stream was live: then our "lost" may be the sniffer's fault.
        self.unreliable = False
        #: Wireshark's "Problems?" column: a sequence or timestamp anomaly was seen.
        self.problem = False
        self._total = 0
        self._first_ts = 0.0
        #: the first packet's extended RTP timestamp: tshark analyses only packets within 2^31 after it
        self._first_ext = 0
        self._last_ts = 0.0
        self._start_seq = 0
        self._stop_seq = 0
        self._seq_num = 0
        self._cycles = 0
        self._under = False
        self._seq_errors = 0
        self._ext_ts = 0
        self._seq_ts = 0
        self._nom_ts = 0
        self._time = 0.0
        self._pt = -1
        self._jitter = 0.0
        self._delta_min = -1.0
        self._delta_max = 0.0
        self._delta_mean = 0.0
        self._jitter_min = -1.0
        self._jitter_max = 0.0
        self._jitter_mean = 0.0
        # pt -> (Wireshark clock rate in kHz-units divisor, clock rate, is telephone-event)
        self._clock_by_pt: dict[int, tuple[float, int, bool]] = {}
        self._pts: list[int] = []
        self._payload_bytes = 0
        self._events: list[str] = []
        self._event_ts = -1
        self._seq_base = 0
        self._hi_seq = 0
        self._bitmap: bytearray | None = bytearray()
        self._dups = 0
        self._ooo = 0
        #: Packets not yet applied (see :meth:`drain`); at most PENDING_LIMIT long.
        self.pending: list[PendingPacket] = []
        #: Column batches not yet applied (see :meth:`add_columns`), all older than ``pending``.
        self._col_ts: list[FloatColumn] = []
        self._col_ints: list[IntColumns] = []
        self._col_count = 0

    def use_rtpmap(self, rtpmap: dict[int, str]) -> None:
        """A re-INVITE of the same call re-mapped this stream's payload types: the latest SDP wins.

        As in Wireshark, whose RTP conversation takes the new mapping; packets
        still queued are applied with it too (a payload type redefined while
        its packets wait is the one case where that differs).
        """
        if rtpmap != self.rtpmap:
            self.rtpmap = dict(rtpmap)
            self._clock_by_pt.clear()

    # ------------------------------------------------------------------ hot path

    def _pt_info(self, pt: int) -> tuple[float, int, bool]:
        """Cache miss path: Wireshark's clock for ``pt`` and whether it carries RFC 4733 events."""
        clock = jitter_clock_rate(pt, self.rtpmap)
        # Wireshark divides by (clock_rate / 1000) in guint32 arithmetic; below
        # 1000 Hz that is a division by zero (inf jitter), so use the exact ratio.
        divisor = float(clock // 1000) if clock >= 1000 else clock / 1000.0
        info = (divisor, clock, is_telephone_event(pt, self.rtpmap))
        self._clock_by_pt[pt] = info
        if pt not in self._pts:  # a miss after use_rtpmap() is not a new payload type
            self._pts.append(pt)
        return info

    def add(  # noqa: PLR0917 - positional on purpose: this is the per-packet hot path
        self,
        ts: float,
        frame: int,
        seq: int,
        rtp_ts: int,
        pt: int,
        marker: bool,
        payload_len: int,
        payload: bytes | None,
    ) -> None:
        """Account one RTP packet (capture time ``ts`` in epoch seconds).

        ``payload`` is the RTP payload; it is only read for telephone-event
        packets, so the caller may pass ``None`` when it has no cheap slice.
        """
        pending = self.pending
        pending.append((ts, seq, rtp_ts, pt, marker, payload_len, payload, 0))
        if len(pending) >= PENDING_LIMIT:
            self.drain()

    def add_columns(self, ts: FloatColumn, ints: IntColumns) -> None:
        """Queue packets given as columns: capture times, and an (n, N_COLUMNS) int64 matrix.

        This is how the collector's chunk loop hands over the packets of a
        stream it decoded with numpy, with no per-packet Python object at
        all. The arrays are kept as they are (the caller passes copies it
        does not reuse); at most COLUMN_LIMIT packets are held before they
        are applied. Tuples queued earlier are applied first, so arrival
        order is kept.
        """
        if self.pending:
            self.drain()
        self._col_ts.append(ts)
        self._col_ints.append(ints)
        self._col_count += len(ts)
        if self._col_count >= COLUMN_LIMIT:
            self._drain_columns()

    def drain(self) -> None:
        """Apply the pending packets (column batches, then tuples), in arrival order."""
        if self._col_count:
            self._drain_columns()
        batch = self.pending
        if batch:
            self.pending = []
            self._apply(batch)

    def _drain_columns(self) -> None:
        """Apply the queued column batches (see :func:`rtp_columns.drain_columns`, for many streams)."""
        from callqual.collector.media.rtp_columns import drain_columns  # the fast path builds on this module

        drain_columns((self,))

    def _apply_columns(self, ts: FloatColumn, ints: IntColumns) -> None:
        """The packet loop of :meth:`_apply` on column batches that are not clean."""
        b1 = ints[:, COL_B1]
        self._apply(
            zip(
                ts.tolist(),
                ints[:, COL_SEQ].tolist(),
                ints[:, COL_RTP_TS].tolist(),
                (b1 & 0x7F).tolist(),
                (b1 > 0x7F).tolist(),
                ints[:, COL_PAYLOAD_LEN].tolist(),
                repeat(_BYTE_VALUES),
                (ints[:, COL_FIRST_BYTE] & 0xFF).tolist(),
                strict=False,
            )
        )

    def _clean_start(self, n: int, seq0: int, last_seq: int) -> bool:
        """Whether a batch of ``n`` packets from ``seq0`` to ``last_seq`` may be clean, by the stream's state.

        The per-packet half of the test (one payload type, no marker,
        sequence numbers rising by 1 to ``_MAX_CLEAN_GAP``, no -1 ms delta) is
        done on the columns. Forward gaps (lost packets) are clean: each is one
        Wireshark sequence error and zeros in the received map, nothing else.
        """
        pt = self._pt
        info = self._clock_by_pt.get(pt)
        bitmap = self._bitmap
        start = self._start_seq
        seq_num = self._seq_num
        return (
            self._total > 0
            and info is not None
            and bool(info[0])
            and not info[2]
            and pt not in CN_PAYLOAD_TYPES
            and seq_num < seq0 <= seq_num + _MAX_CLEAN_GAP
            # the received map's highest number is Wireshark's last in-order one (no reordering pending)
            and (bitmap is None or (bool(bitmap) and self._hi_seq & 0xFFFF == seq_num))
            and (bitmap is None or len(bitmap) + (last_seq - seq_num) <= _MAX_SEQ_MAP)
            # no wrap (0 excluded: seq0 > seq_num >= 0) and no state change of the wrap latch
            and last_seq >= seq0 + n - 1
            and (last_seq <= start if self._under else seq0 >= start)
        )

    def _apply(self, batch: Iterable[PendingPacket]) -> None:
        """Apply packets given as tuples, in arrival order.

        Packets are queued (a list append per packet) and applied in batches
        with the stream's state held in local variables for the whole batch:
        CPython reads and writes locals several times faster than attributes,
        and this loop runs once per RTP packet, which is nearly every packet
        of a VoIP capture. The results are exactly those of applying the
        packets one by one; every reader of the statistics drains first.

        A queued entry is ``(ts, seq, rtp_ts, pt, marker, payload_len, buf,
        offset)``: the RTP payload is ``buf[offset:offset + payload_len]``, so
        the fast path never slices a payload that only telephone events read.
        """
        clock_by_pt = self._clock_by_pt
        ext_ts = self._ext_ts
        event_ts = self._event_ts
        bitmap = self._bitmap
        hi_seq = self._hi_seq
        total = self._total
        first_ts = self._first_ts
        first_ext = self._first_ext
        last_ts = self._last_ts
        start = self._start_seq
        stop_seq = self._stop_seq
        under = self._under
        cycles = self._cycles
        seq_num = self._seq_num
        seq_errors = self._seq_errors
        problem = self.problem
        seq_ts = self._seq_ts
        nom_ts = self._nom_ts
        last_pt = self._pt
        time = self._time
        jitter = self._jitter
        delta_min = self._delta_min
        delta_max = self._delta_max
        delta_mean = self._delta_mean
        jitter_min = self._jitter_min
        jitter_max = self._jitter_max
        jitter_mean = self._jitter_mean
        payload_bytes = self._payload_bytes
        cn = CN_PAYLOAD_TYPES

        for ts, seq, rtp_ts, pt, marker, payload_len, buf, offset in batch:
            info = clock_by_pt.get(pt)
            if info is None:
                info = self._pt_info(pt)
            payload_bytes += payload_len

            # packet-rtp.c calculate_extended_timestamp: unwrap against the previous packet.
            ext = (ext_ts & _TS_HIGH_MASK) | rtp_ts
            if ext + _TS_HALF < ext_ts:
                ext += _TS_MOD
            elif ext_ts + _TS_HALF < ext:
                ext -= _TS_MOD
            ext_ts = ext

            if info[2] and buf is not None and payload_len >= 4 and ext != event_ts:
                # RFC 4733 2.5.1.2: all packets of one event share its timestamp,
                # so a new timestamp is a new event and retransmitted end packets
                # (2.5.1.4) collapse into the one entry.
                event_ts = ext
                self._events.append(event_name(buf[offset]))

            if bitmap is not None:
                if seq == (hi_seq + 1) & 0xFFFF and bitmap:
                    # In-order: the next extended number, one byte appended.
                    hi_seq += 1
                    if len(bitmap) < _MAX_SEQ_MAP:
                        bitmap.append(1)
                    else:
                        bitmap = None
                else:
                    self._hi_seq = hi_seq
                    self._bitmap = bitmap
                    self._track_seq(bitmap, seq)
                    hi_seq = self._hi_seq
                    bitmap = self._bitmap

            if not total:
                first_ts = last_ts = ts
                first_ext = ext
                start = stop_seq = seq_num = seq
                seq_ts = nom_ts = ext
                time = 0.0
                last_pt = pt
                total = 1
                continue

            now = (ts - first_ts) * 1000.0
            last_ts = ts
            # tap-rtp-analysis.c "in_time_sequence": a timestamp before the first packet's, or 2^31
            # or more after it, modulo 2^32 (a corrupt or reset clock), is a timestamp error
            # (STAT_FLAG_WRONG_TIMESTAMP): counted, but moves neither sequence state nor delta/jitter.
            in_time = (ext - first_ext) & 0xFFFFFFFF < _TS_HALF

            # Sequence cycles with the "under" latch, then Wireshark's sequence-error count.
            if not in_time:
                problem = True
            elif not under and (seq < start or (seq == 0 and stop_seq == 65535)):
                cycles += 1
                under = True
            elif seq > start and under:
                under = False

            if in_time and (seq_num + 1 == seq or (seq_num == 65535 and seq == 0)):
                seq_num = seq
            elif in_time and (seq_num + 1 < seq or seq_num - seq > _WRAP_GUESS):
                seq_num = seq
                seq_errors += 1
                problem = True
            elif seq_num + 1 > seq:
                seq_errors += 1
                problem = True

            # A marker on a timestamp that went backwards is a timestamp error
            # (STAT_FLAG_WRONG_TIMESTAMP); an unchanged one is not (tshark 4.0.17
            # gives no "Problems?" for nDPI/rtp.pcapng's RFC 4733 stream, which
            # repeats the marker on one timestamp). Either way a marker packet
            # starts a talkspurt and is kept out of the delta/jitter statistics.
            if marker and ext < seq_ts:
                problem = True

            prev_pt = last_pt
            last_pt = pt
            if not in_time:
                seq_ts = ext
                stop_seq = seq
                total += 1
                continue
            delta = now - time
            divisor = info[0]
            current_jitter = 0.0
            if divisor:
                # modulo 2^32, as the tap's 32-bit timestamps: the unwrapping above can be a cycle
                # off after a corrupt timestamp, the difference to the last analysed one is not
                diff = delta - (((ext - nom_ts + _TS_HALF) & 0xFFFFFFFF) - _TS_HALF) / divisor
                nom_ts = ext
                if diff < 0.0:
                    diff = -diff
                current_jitter = (15.0 * jitter + diff) / 16.0
                jitter = current_jitter

            if not (marker or pt in cn or prev_pt in cn):
                n = total
                # Plain comparisons rather than max(): a builtin call per packet costs more.
                if delta > delta_max:  # noqa: PLR1730
                    delta_max = delta
                if delta_min == -1.0 or delta < delta_min:
                    delta_min = delta
                delta_mean = (delta_mean * (n - 1) + delta) / n
                if divisor:
                    if current_jitter > jitter_max:  # noqa: PLR1730
                        jitter_max = current_jitter
                    jitter_mean = (jitter_mean * (n - 1) + current_jitter) / n
                    if jitter_min == -1.0 or current_jitter < jitter_min:
                        jitter_min = current_jitter

            time = now
            seq_ts = ext
            stop_seq = seq
            total += 1

        self._ext_ts = ext_ts
        self._event_ts = event_ts
        self._bitmap = bitmap
        self._hi_seq = hi_seq
        self._total = total
        self._first_ts = first_ts
        self._first_ext = first_ext
        self._last_ts = last_ts
        self._start_seq = start
        self._stop_seq = stop_seq
        self._under = under
        self._cycles = cycles
        self._seq_num = seq_num
        self._seq_errors = seq_errors
        self.problem = problem
        self._seq_ts = seq_ts
        self._nom_ts = nom_ts
        self._pt = last_pt
        self._time = time
        self._jitter = jitter
        self._delta_min = delta_min
        self._delta_max = delta_max
        self._delta_mean = delta_mean
        self._jitter_min = jitter_min
        self._jitter_max = jitter_max
        self._jitter_mean = jitter_mean
        self._payload_bytes = payload_bytes

    def _track_seq(self, bitmap: bytearray, seq: int) -> None:
        """RFC 3550 A.1-style extended sequence number against the highest seen, into the received map."""
        if not bitmap:
            # Start above zero so that a packet reordered before the first
            # one still has a non-negative extended number.
            self._seq_base = _SEQ_MOD + seq
            self._hi_seq = _SEQ_MOD + seq
            bitmap.append(1)
            return
        hi = self._hi_seq
        ext = (hi & ~0xFFFF) | seq
        if ext + _SEQ_HALF < hi:
            ext += _SEQ_MOD
        elif hi + _SEQ_HALF < ext:
            ext -= _SEQ_MOD
        if ext > hi:
            gap = ext - hi
            if len(bitmap) + gap > _MAX_SEQ_MAP:
                self._bitmap = None
                return
            if gap > 1:
                bitmap.extend(bytes(gap - 1))
            bitmap.append(1)
            self._hi_seq = ext
            return
        index = ext - self._seq_base
        if index < 0:
            self._ooo += 1
        elif bitmap[index]:
            self._dups += 1
        else:
            bitmap[index] = 1
            self._ooo += 1

    # ------------------------------------------------------------------ results

    @property
    def packets(self) -> int:
        self.drain()
        return self._total

    @property
    def expected(self) -> int:
        """Wireshark's expected count: last seq + wraps - first seq + 1 (ui/rtp_stream.c)."""
        self.drain()
        if not self._total:
            return 0
        return self._stop_seq + self._cycles * _SEQ_MOD - self._start_seq + 1

    @property
    def lost(self) -> int:
        """Wireshark's Lost column; negative when duplicates outnumber losses."""
        return self.expected - self._total

    def burst_ratio(self) -> float:
        """ITU-T G.107 (06/2015) 3.6 BurstR from the observed loss pattern.

        BurstR = (average length of observed loss bursts) / (average burst
        length expected for random loss at the same rate); for random loss
        with probability p the expected burst length is 1/(1-p) (G.113
        Appendix I, Bernoulli model), so BurstR = (L/B)(1-p). 1.0 without
        loss or when the received map was abandoned; can be below 1 for loss
        more evenly spread than random (the E-model clamps it).
        """
        self.drain()
        bitmap = self._bitmap
        if not bitmap:
            return 1.0
        # Counted with C-speed scans (this runs at every interval report, over the whole
        # map): a burst is a run of zeros, so it starts at the map's start or after a 1.
        lost = bitmap.count(0)
        if not lost:
            return 1.0
        bursts = bitmap.count(b"\x01\x00") + (bitmap[0] == 0)
        p = lost / len(bitmap)
        return (lost / bursts) * (1.0 - p)

    def codec(self) -> tuple[str | None, int | None]:
        """Codec of the first media payload type (telephone-event and CN skipped if anything else came)."""
        self.drain()
        for pt in self._pts:
            # A payload type not seen since use_rtpmap() emptied the cache is looked up afresh.
            info = self._clock_by_pt.get(pt) or self._pt_info(pt)
            if pt not in CN_PAYLOAD_TYPES and not info[2]:
                return codec_for(pt, self.rtpmap)
        if self._pts:
            return codec_for(self._pts[0], self.rtpmap)
        return None, None

    def report(self, call_id: str | None, final: bool) -> RtpStreamReport:
        """Snapshot as a wire event; cheap enough for periodic reports (one pass over the loss map)."""
        self.drain()
        codec, clock_rate = self.codec()
        # trusted: every field is this class's own state, of its exact type (tested against
        # validation in test_rtp_stream_vs_tshark.py); validating took ~20 us a report.
        return RtpStreamReport.trusted(  # in the fields' order: it is the JSON's
            call_id=call_id,
            ssrc=self.ssrc,
            src_ip=self.src_ip,
            src_port=self.src_port,
            dst_ip=self.dst_ip,
            dst_port=self.dst_port,
            payload_type=self._pts[0] if self._pts else -1,
            payload_types=list(self._pts),
            codec=codec,
            clock_rate=clock_rate,
            first_ts=self._first_ts,
            last_ts=self._last_ts,
            first_frame=self.first_frame,
            packets=self._total,
            expected=self.expected,
            lost=self.lost,
            duplicates=self._dups,
            out_of_order=self._ooo,
            seq_errors=self._seq_errors,
            min_delta_ms=self._delta_min,
            mean_delta_ms=self._delta_mean,
            max_delta_ms=self._delta_max,
            min_jitter_ms=self._jitter_min,
            mean_jitter_ms=self._jitter_mean,
            max_jitter_ms=self._jitter_max,
            events=list(self._events),
            lost_rfc3550=None if not self._bitmap else self._bitmap.count(0),
            burst_ratio=self.burst_ratio(),
            payload_bytes=self._payload_bytes,
            unreliable=self.unreliable,
            kind="rtp_stream",
            schema_version=SCHEMA_VERSION,
            final=final,
        )
