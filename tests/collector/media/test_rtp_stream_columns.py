"""RtpStream.add_columns (the collector's numpy chunk path) against the per-packet tuple path.

The column path vectorises clean batches; every statistic must come out as
the tuple loop computes it (which is what the tshark tests check): counts
exactly, and the jitter/delta figures, which the vectorised path computes in
closed form, to within parts in 10^9 -- for clean streams and for every kind
of messy one, however the packets are split into batches.
"""

import random

import numpy as np
import pytest

from callqual.collector.media.rtp_columns import drain_columns
from callqual.collector.media.rtp_stream import N_COLUMNS, RtpStream

T0 = 1_700_000_000.0
Pkt = tuple[float, int, int, int, bool, int, int]  # ts, seq, rtp ts, pt, marker, payload len, first byte


def _stream() -> RtpStream:
    return RtpStream("10.0.0.1", 4000, "10.0.0.2", 4002, 7, 1, {101: "telephone-event/8000"})


def _state(stream: RtpStream) -> dict[str, object]:
    stream.drain()
    slots = [
        s for s in RtpStream.__slots__ if s not in {"pending", "_col_ts", "_col_ints", "_col_count", "uid"}
    ]
    state = {s: getattr(stream, s) for s in slots}
    state["burst"] = stream.burst_ratio()
    return state


def _same(ours: dict[str, object], ref: dict[str, object]) -> None:
    assert ours.keys() == ref.keys()
    for key, value in ref.items():
        if isinstance(value, float):
            assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
        else:
            assert ours[key] == value, key


def _tuples(packets: list[Pkt]) -> RtpStream:
    stream = _stream()
    for frame, (ts, seq, rtp_ts, pt, marker, plen, first) in enumerate(packets, 1):
        stream.add(ts, frame, seq, rtp_ts, pt, marker, plen, bytes([first]) * max(plen, 1))
    return stream


def _columns(packets: list[Pkt], rng: random.Random) -> RtpStream:
    """First packet as a tuple (the collector creates streams on the slow path), the rest as columns."""
    stream = _stream()
    ts, seq, rtp_ts, pt, marker, plen, first = packets[0]
    stream.add(ts, 1, seq, rtp_ts, pt, marker, plen, bytes([first]) * max(plen, 1))
    i = 1
    while i < len(packets):
        n = rng.choice((1, 2, 7, 50, 300, 700))
        part = packets[i : i + n]
        if rng.random() < 0.1:
            # the odd slow-path packet in between
            p = part[0]
            stream.add(p[0], i + 1, p[1], p[2], p[3], p[4], p[5], bytes([p[6]]) * max(p[5], 1))
            part = part[1:]
            i += 1
        if part:
            times = np.array([p[0] for p in part], dtype=np.float64)
            ints = np.array(
                [(p[1], p[2], p[3] | (0x80 if p[4] else 0), p[5], p[6]) for p in part], dtype=np.int64
            ).reshape(-1, N_COLUMNS)
            stream.add_columns(times, ints)
        i += len(part)
    return stream


def _regular(rng: random.Random, n: int, seq0: int, ts0: int) -> list[Pkt]:
    out = []
    t = T0
    for i in range(n):
        t += 0.020 + rng.gauss(0, 0.002)
        out.append((t, (seq0 + i) & 0xFFFF, (ts0 + 160 * i) & 0xFFFFFFFF, 0, i == 0, 160, 0xD5))
    return out


def _messy(rng: random.Random, packets: list[Pkt]) -> list[Pkt]:
    out = list(packets)
    for _ in range(rng.randint(1, 8)):
        k = rng.randrange(1, len(out) - 2)
        kind = rng.randrange(7)
        ts, seq, rtp_ts, pt, marker, plen, first = out[k]
        if kind == 0:
            del out[k]  # loss
        elif kind == 1:
            out.insert(k, out[k])  # duplicate
        elif kind == 2:
            out[k], out[k + 1] = out[k + 1], out[k]  # reorder
        elif kind == 3:
            out[k] = (ts, seq, rtp_ts, pt, True, plen, first)  # talkspurt
        elif kind == 4:
            out[k] = (ts, seq, rtp_ts, 13, False, 1, 40)  # comfort noise
        elif kind == 5:
            out[k] = (ts, seq, rtp_ts, 101, False, 4, rng.randrange(16))  # DTMF
        else:
            out[k] = (out[k - 1][0] - 0.001, seq, rtp_ts, pt, marker, plen, first)  # delta of -1 ms
    return out


@pytest.mark.parametrize("seed", range(40))
def test_columns_match_tuples(seed: int) -> None:
    rng = random.Random(seed)
    seq0 = rng.choice((1000, 65000, 65535, rng.randrange(65536)))
    ts0 = rng.choice((0, 0xFFFFFFFF - 50_000, rng.randrange(1 << 32)))
    packets = _regular(rng, rng.randint(2, 3000), seq0, ts0)
    if seed % 2:
        packets = _messy(rng, packets)
    _same(_state(_columns(packets, rng)), _state(_tuples(packets)))


def test_clean_columns_take_the_vectorised_path() -> None:
    rng = random.Random(1)
    packets = _regular(rng, 1000, 100, 5)
    stream = _columns(packets, rng)
    _same(_state(stream), _state(_tuples(packets)))
    assert stream.packets == 1000
    assert stream.lost == 0


def _as_columns(part: list[Pkt]) -> tuple[np.ndarray, np.ndarray]:
    times = np.array([p[0] for p in part], dtype=np.float64)
    ints = np.array([(p[1], p[2], p[3] | (0x80 if p[4] else 0), p[5], p[6]) for p in part], dtype=np.int64)
    return times, ints.reshape(-1, N_COLUMNS)


@pytest.mark.parametrize("seed", range(12))
def test_streams_drained_together_match_tuples(seed: int) -> None:
    """drain_columns over many streams at once (what the collector does at a report) = each alone."""
    rng = random.Random(1000 + seed)
    flows: list[list[Pkt]] = []
    for k in range(rng.randint(2, 30)):
        packets = _regular(rng, rng.randint(2, 1500), rng.randrange(65536), rng.randrange(1 << 32))
        flows.append(_messy(rng, packets) if k % 3 == 0 and len(packets) > 4 else packets)
    streams = [_stream() for _ in flows]
    for stream, packets in zip(streams, flows, strict=True):
        ts, seq, rtp_ts, pt, marker, plen, first = packets[0]
        stream.add(ts, 1, seq, rtp_ts, pt, marker, plen, bytes([first]) * max(plen, 1))
    cursor = [1] * len(flows)
    while any(c < len(p) for c, p in zip(cursor, flows, strict=True)):
        for i, packets in enumerate(flows):
            part = packets[cursor[i] : cursor[i] + rng.choice((1, 3, 40, 120, 600))]
            if part:
                streams[i].add_columns(*_as_columns(part))
                cursor[i] += len(part)
        if rng.random() < 0.5:
            drain_columns(rng.sample(streams, rng.randint(1, len(streams))))
    drain_columns(streams)
    for stream, packets in zip(streams, flows, strict=True):
        _same(_state(stream), _state(_tuples(packets)))


def _lossy(rng: random.Random, packets: list[Pkt]) -> list[Pkt]:
    """Random loss (2 %), a few bursts of 2-30, and one jump past the clean-gap bound."""
    out = [p for i, p in enumerate(packets) if i in (0, len(packets) - 1) or rng.random() >= 0.02]
    for _ in range(3):
        k = rng.randrange(1, len(out) - 40)
        del out[k : k + rng.randint(2, 30)]
    k = rng.randrange(1, len(out) - 1)
    return out[:k] + [(p[0], (p[1] + 1500) & 0xFFFF, *p[2:]) for p in out[k:]]


@pytest.mark.parametrize("seed", range(20))
def test_lost_packets_stay_on_the_vectorised_path_and_match_tuples(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forward sequence gaps are clean (issue 14): the figures are the packet loop's all the same."""
    rng = random.Random(2000 + seed)
    packets = _lossy(rng, _regular(rng, 3000, rng.choice((1000, 60000, rng.randrange(65536))), 5))
    slow: list[int] = []
    original = RtpStream._apply_columns

    def counting(self: RtpStream, ts: np.ndarray, ints: np.ndarray) -> None:
        slow.append(len(ts))
        original(self, ts, ints)

    monkeypatch.setattr(RtpStream, "_apply_columns", counting)
    stream = _columns(packets, rng)
    reference = _tuples(packets)
    _same(_state(stream), _state(reference))
    assert reference.lost > 40
    # Only the batches holding the 1,500 jump or a sequence wrap may take the packet loop.
    assert sum(slow) <= 2 * 700 + 700


def test_the_reference_loop_does_not_depend_on_where_it_is_drained() -> None:
    """Wireshark's arithmetic packet by packet: any split into drains gives the same floats, bit for bit."""
    packets = _messy(random.Random(7), _regular(random.Random(7), 1500, 100, 1000))
    states = []
    for cuts in ({5, 300}, {7, 301, 777}, set()):
        stream = _stream()
        for frame, (ts, seq, rtp_ts, pt, marker, plen, first) in enumerate(packets, 1):
            stream.add(ts, frame, seq, rtp_ts, pt, marker, plen, bytes([first]) * max(plen, 1))
            if frame in cuts:
                stream.drain()
        states.append(_state(stream))
    assert states[0] == states[1] == states[2]


def test_a_streams_columns_do_not_depend_on_the_streams_drained_with_it() -> None:
    """What ``analyze --workers N`` relies on: each share drains another set of streams at once.

    The vectorised path is not bit-identical across drain *splits* (its blocks
    restart and its means telescope at each drain: last digits differ), so the
    shares keep one collector's drain schedule (flow_shard); given that schedule,
    the companions of a drain_columns call must not change a stream's floats.
    """
    rng = random.Random(11)
    flows = [_regular(rng, 1500, rng.randrange(65536), rng.randrange(1 << 32)) for _ in range(6)]

    def run(companions: list[int]) -> dict[str, object]:
        streams = [_stream() for _ in flows]
        for stream, packets in zip(streams, flows, strict=True):
            ts, seq, rtp_ts, pt, marker, plen, first = packets[0]
            stream.add(ts, 1, seq, rtp_ts, pt, marker, plen, bytes([first]) * max(plen, 1))
        for lo, hi in ((1, 300), (300, 700), (700, 1100), (1100, 1500)):  # each below COLUMN_LIMIT
            for stream, packets in zip(streams, flows, strict=True):
                stream.add_columns(*_as_columns(packets[lo:hi]))
            drain_columns([streams[0], *(streams[i] for i in companions)])
        return _state(streams[0])

    assert run([]) == run([1, 2, 3, 4, 5]) == run([5, 3])
